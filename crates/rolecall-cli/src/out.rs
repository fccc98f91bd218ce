//! Results on stdout, without `println!`'s panic when the reader has gone away
//! (`rolecall status | head -1`, a closed pipe): the rest of the output is dropped quietly and
//! the command finishes with its own exit code. Any other write error (a full disk) is said
//! once on stderr.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

static GONE: AtomicBool = AtomicBool::new(false);

/// Writes `args` to stdout (use [`outln!`] and [`out!`]).
pub fn write(args: std::fmt::Arguments<'_>) {
    if GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        GONE.store(true, Ordering::Relaxed);
        if !reader_gone(&e) {
            eprintln!("rolecall: cannot write the output: {e}");
        }
    }
}

/// Whether stdout's reader has gone (the rest of the output would be dropped).
pub fn gone() -> bool {
    GONE.load(Ordering::Relaxed)
}

/// A closed pipe: EPIPE, or on Windows ERROR_NO_DATA (232) / ERROR_PIPE_NOT_CONNECTED (233).
fn reader_gone(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
        || (cfg!(windows) && matches!(e.raw_os_error(), Some(232 | 233)))
}

/// `println!` on stdout that survives a closed pipe.
macro_rules! outln {
    () => {
        $crate::out::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` on stdout that survives a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*))
    };
}
