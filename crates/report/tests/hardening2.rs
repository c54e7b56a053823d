//! Issue 13 #13: source files and go.mod files of a checkout that are FIFOs
//! or symlinks to devices are not read (a FIFO would block `render`
//! forever, `/dev/zero` would fill memory). Bounded by a watchdog.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use report::source::{read_module, read_source};

fn mkfifo(path: &Path) {
    let st = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn issue13_13_fifo_and_dev_zero_sources_are_not_read() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().to_path_buf();
    let (fifo_dir, zero_dir, ok_dir) = (root.join("f"), root.join("z"), root.join("ok"));
    for p in [&fifo_dir, &zero_dir, &ok_dir] {
        std::fs::create_dir_all(p).unwrap();
    }
    mkfifo(&fifo_dir.join("go.mod"));
    mkfifo(&fifo_dir.join("main.go"));
    std::os::unix::fs::symlink("/dev/zero", zero_dir.join("go.mod")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", zero_dir.join("main.go")).unwrap();
    std::fs::write(ok_dir.join("go.mod"), "module example.com/ok\n").unwrap();
    std::fs::write(ok_dir.join("main.go"), "package main\n").unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let got = (
            read_module(&fifo_dir),
            read_source(&fifo_dir.join("main.go")),
            read_module(&zero_dir),
            read_source(&zero_dir.join("main.go")),
            read_module(&ok_dir),
            read_source(&ok_dir.join("main.go")),
        );
        let _ = tx.send(got);
    });
    // Without the fix the thread blocks on the FIFO forever: fail, not hang.
    let got = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("reading a FIFO or /dev/zero must not block");
    assert_eq!(got.0, None);
    assert_eq!(got.1, None);
    assert_eq!(got.2, None);
    assert_eq!(got.3, None);
    assert_eq!(got.4.as_deref(), Some("example.com/ok"));
    assert_eq!(got.5.as_deref(), Some("package main\n"));
}
