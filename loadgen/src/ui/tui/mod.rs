//! The live full-screen view (ratatui on crossterm). It runs on its own thread — terminal I/O
//! blocks — fed frames over a channel by the reporter, redrawing several times a second and
//! reading keys: `q` or Ctrl-C asks the run to stop (the same path as a first Ctrl-C signal),
//! a second press abandons in-flight requests.
//!
//! The terminal is restored however the view ends: normally, when the reporter drops the handle
//! on an error, or on a panic (a hook restores it before the panic message prints).

pub mod draw;
pub mod state;
mod terminal;

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

use crate::ui::frame::Frame;
pub use state::{FaultView, RunView, StageView, State};

/// How often the view redraws (and polls for keys) between frames.
const REDRAW: Duration = Duration::from_millis(200);

enum Message {
    Frame(Box<Frame>),
    Note(String),
}

/// The reporter's side of the view.
pub struct Tui {
    tx: Option<mpsc::Sender<Message>>,
    thread: Option<JoinHandle<()>>,
}

/// Called when the user presses q or Ctrl-C.
pub type OnStop = Box<dyn Fn() + Send + 'static>;

impl Tui {
    /// Takes over the terminal; fails (and leaves it as it was) if it cannot.
    pub fn start(run: RunView, on_stop: OnStop) -> std::io::Result<Tui> {
        let screen = terminal::Screen::enter()?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("tui".into())
            .spawn(move || view_loop(screen, State::new(run), rx, on_stop))?;
        Ok(Tui {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn update(&self, frame: Frame) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Message::Frame(Box::new(frame)));
        }
    }

    pub fn note(&self, text: &str) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Message::Note(text.to_owned()));
        }
    }

    /// Closes the view and gives the terminal back.
    pub fn finish(mut self) {
        self.close();
    }

    fn close(&mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            // The thread notices the closed channel within one redraw period.
            let _ = thread.join();
        }
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        self.close();
    }
}

fn view_loop(
    mut screen: terminal::Screen,
    mut state: State,
    rx: mpsc::Receiver<Message>,
    on_stop: OnStop,
) {
    let mut frame_at = Instant::now();
    loop {
        loop {
            match rx.try_recv() {
                Ok(Message::Frame(frame)) => {
                    state.push(*frame);
                    frame_at = Instant::now();
                }
                Ok(Message::Note(text)) => state.note = Some(text),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return,
            }
        }
        // The clock runs on between the once-a-second frames.
        let clock = state.last().map_or(Duration::ZERO, |f| {
            f.elapsed + frame_at.elapsed().min(Duration::from_secs(1))
        });
        if screen.draw(|s| draw::render(s, &state, clock)).is_err() {
            return;
        }
        match event::poll(REDRAW) {
            Ok(true) => match event::read() {
                Ok(Event::Key(key)) if key.kind == KeyEventKind::Press => {
                    let ctrl_c = key.code == KeyCode::Char('c')
                        && key.modifiers.contains(KeyModifiers::CONTROL);
                    if ctrl_c || matches!(key.code, KeyCode::Char('q' | 'Q')) {
                        state.stop_presses += 1;
                        on_stop();
                    }
                }
                // A resize redraws on the next turn; other events are ignored.
                Ok(_) => {}
                Err(_) => return,
            },
            Ok(false) => {}
            Err(_) => return,
        }
    }
}
