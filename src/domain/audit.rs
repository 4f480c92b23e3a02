//! The security events the audit trail records: one name each, as stored.

/// A security event. Its name (`as_str`) is what the audit rows and operators read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    CertificateBindingRefused,
    CertificateBound,
    CertificateRefused,
    CertificateUnbound,
    CertificateUnboundByOwner,
    ClientCreated,
    ClientDeleted,
    CodeReplayed,
    ConsentGranted,
    FactorsRemovedByOperator,
    KeysRotated,
    LoginFailed,
    LoginMustChangePassword,
    LoginOk,
    LoginOkCertificate,
    LoginOkPasskey,
    LoginOkTwoFactor,
    LoginRefusedDisabled,
    LoginRefusedTemporaryLapsed,
    Logout,
    PasskeyAdded,
    PasskeyFailed,
    PasskeyRemoved,
    PasswordChanged,
    PasswordChangedAtSignIn,
    PasswordExpiredByOperator,
    PasswordReset,
    PasswordResetByOperator,
    PasswordResetRequested,
    PasswordResetUnknown,
    RefreshTokenReplayed,
    SecondFactorFailed,
    TotpAdded,
    TotpRemoved,
    UserCreated,
    UserDisabled,
    UserEnabled,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::CertificateBindingRefused => "certificate_binding_refused",
            Event::CertificateBound => "certificate_bound",
            Event::CertificateRefused => "certificate_refused",
            Event::CertificateUnbound => "certificate_unbound",
            Event::CertificateUnboundByOwner => "certificate_unbound_by_owner",
            Event::ClientCreated => "client_created",
            Event::ClientDeleted => "client_deleted",
            Event::CodeReplayed => "code_replayed",
            Event::ConsentGranted => "consent_granted",
            Event::FactorsRemovedByOperator => "factors_removed_by_operator",
            Event::KeysRotated => "keys_rotated",
            Event::LoginFailed => "login_failed",
            Event::LoginMustChangePassword => "login_must_change_password",
            Event::LoginOk => "login_ok",
            Event::LoginOkCertificate => "login_ok_certificate",
            Event::LoginOkPasskey => "login_ok_passkey",
            Event::LoginOkTwoFactor => "login_ok_two_factor",
            Event::LoginRefusedDisabled => "login_refused_disabled",
            Event::LoginRefusedTemporaryLapsed => "login_refused_temporary_lapsed",
            Event::Logout => "logout",
            Event::PasskeyAdded => "passkey_added",
            Event::PasskeyFailed => "passkey_failed",
            Event::PasskeyRemoved => "passkey_removed",
            Event::PasswordChanged => "password_changed",
            Event::PasswordChangedAtSignIn => "password_changed_at_sign_in",
            Event::PasswordExpiredByOperator => "password_expired_by_operator",
            Event::PasswordReset => "password_reset",
            Event::PasswordResetByOperator => "password_reset_by_operator",
            Event::PasswordResetRequested => "password_reset_requested",
            Event::PasswordResetUnknown => "password_reset_unknown",
            Event::RefreshTokenReplayed => "refresh_token_replayed",
            Event::SecondFactorFailed => "second_factor_failed",
            Event::TotpAdded => "totp_added",
            Event::TotpRemoved => "totp_removed",
            Event::UserCreated => "user_created",
            Event::UserDisabled => "user_disabled",
            Event::UserEnabled => "user_enabled",
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
