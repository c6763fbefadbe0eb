//! Errors as the window receives them: `{code, message}`, the code for the window to act on,
//! the message for the person.

/// An error as the UI receives it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, ts_rs::TS)]
pub struct CmdError {
    /// [`tusker_core::Error::code`], or `invalid_input` for a value the shell refused.
    pub code: &'static str,
    pub message: String,
}

impl From<tusker_core::Error> for CmdError {
    fn from(e: tusker_core::Error) -> Self {
        CmdError {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl From<String> for CmdError {
    fn from(message: String) -> Self {
        CmdError::invalid(message)
    }
}

impl CmdError {
    /// A value from the window the shell will not take.
    pub fn invalid(message: impl Into<String>) -> CmdError {
        CmdError {
            code: "invalid_input",
            message: message.into(),
        }
    }
}

/// What a command returns to the UI: a value, or an error.
pub type CmdResult<T> = Result<T, CmdError>;

/// Converts an engine error for the UI (`map_err(text)`).
pub fn text(e: tusker_core::Error) -> CmdError {
    e.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_reach_the_ui_as_code_and_message() {
        let e: CmdError = tusker_core::Error::UnknownUpload(7).into();
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"code": "unknown_upload", "message": "no upload with id 7"})
        );
    }
}
