-- A per-portal minimum authentication level (an `acr` name of the settings); NULL = none.
ALTER TABLE clients ADD COLUMN min_acr TEXT;
