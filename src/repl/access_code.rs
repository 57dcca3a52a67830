//! Asking for the access code again when the relay refused it at start-up. The connection
//! is made by a tokio task while the REPL thread owns the terminal, so the task asks the
//! REPL thread: it leaves the prompt (reedline's break signal), asks with hidden input,
//! hands the answer back, and returns to the prompt with what was being typed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::secret::Secret;

/// An answer to the question: the new code, or `None` when the user would not give one.
pub type Answer = Option<Secret>;

/// The one question the connecting task may have for the REPL thread.
#[derive(Default)]
pub struct AccessCodeQuestion {
    pending: Mutex<Option<Question>>,
}

/// What to ask, and where the answer goes.
pub struct Question {
    /// The words before the hidden input.
    pub prompt: String,
    pub answer: oneshot::Sender<Answer>,
}

impl AccessCodeQuestion {
    /// Asks (from the connecting task): interrupts the prompt through `break_signal`; the
    /// answer comes on the receiver.
    pub fn ask(&self, prompt: String, break_signal: &Arc<AtomicBool>) -> oneshot::Receiver<Answer> {
        let (answer, answered) = oneshot::channel();
        *self.lock() = Some(Question { prompt, answer });
        break_signal.store(true, Ordering::SeqCst);
        answered
    }

    /// The question waiting for the REPL thread, if any.
    pub fn take(&self) -> Option<Question> {
        self.lock().take()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Question>> {
        // A sender left behind by a panic is still a valid question.
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_question_interrupts_the_prompt_and_its_answer_comes_back() {
        let question = AccessCodeQuestion::default();
        assert!(question.take().is_none());
        let break_signal = Arc::new(AtomicBool::new(false));
        let mut answered = question.ask("code: ".into(), &break_signal);
        assert!(break_signal.load(Ordering::SeqCst));
        let asked = question.take().expect("waiting");
        assert_eq!(asked.prompt, "code: ");
        assert!(question.take().is_none(), "asked once");
        let _ = asked.answer.send(Some(Secret::from("new code")));
        assert_eq!(answered.try_recv().unwrap().unwrap().expose(), "new code");
    }
}
