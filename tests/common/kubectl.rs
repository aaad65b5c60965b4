//! kubectl against the local API server that `scripts/testenv.sh start` runs.
//! `scripts/test.sh` exports KUBECONFIG and puts the matching kubectl first on PATH.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// The outcome of one kubectl run.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

fn kubeconfig() -> String {
    std::env::var("KUBECONFIG")
        .expect("KUBECONFIG is not set: these tests need the local API server. Run them with scripts/test.sh")
}

/// Runs kubectl with `args`, feeding `stdin` if given.
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new("kubectl");
    cmd.env("KUBECONFIG", kubeconfig())
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl must be on PATH");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().expect("kubectl runs").into()
}
