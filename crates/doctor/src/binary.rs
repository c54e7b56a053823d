//! Findings about a Go executable (see [`crate::gobin`] for how it is read).

use crate::gobin::GoBinary;
use crate::{FIX_SIGTERM, Finding, Severity};

const FIX_COVER: &str = "build with `go build -cover -covermode=atomic` (or put `covfleet go-shim install --dir DIR` first on PATH); GOFLAGS=-cover works too, if nothing resets GOFLAGS in the build";

/// Go 1.20 introduced `-cover` for programs (GOCOVERDIR).
fn go_minor(version: &str) -> Option<u32> {
    let rest = version.strip_prefix("go1.")?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Every finding about `bin`.
pub fn findings(bin: &GoBinary) -> Vec<Finding> {
    let mut out = Vec::new();
    match bin.go_version.as_deref() {
        Some(v) if go_minor(v).is_some_and(|m| m < 20) => out.push(
            Finding::new(
                "go-too-old",
                Severity::Problem,
                format!("built with {v}: coverage for programs (GOCOVERDIR, runtime/coverage) needs Go 1.20 or later"),
            )
            .fix("build with Go 1.20 or later"),
        ),
        Some(v) => out.push(Finding::new("go-version", Severity::Info, format!("built with {v}"))),
        None => out.push(Finding::new(
            "go-version",
            Severity::Info,
            "no Go build information found (version unknown)",
        )),
    }

    let cover_setting = bin.setting("-cover") == Some("true");
    let test_binary = bin.has_function("testing.MainStart");
    if bin.packages.is_empty() {
        if cover_setting {
            out.push(
                Finding::new(
                    "no-packages-instrumented",
                    Severity::Problem,
                    "built with -cover, but no package carries coverage meta-data (the -coverpkg patterns matched nothing?)",
                )
                .fix("check the -coverpkg patterns against `go list`; `-coverpkg=./...` covers the main module"),
            );
        } else {
            out.push(
                Finding::new(
                    "not-instrumented",
                    Severity::Problem,
                    "not built with -cover: no package carries coverage meta-data and the build info has no -cover=true",
                )
                .fix(FIX_COVER),
            );
        }
    } else {
        let mut names: Vec<&str> = bin.packages.iter().map(|p| p.path.as_str()).collect();
        let total = names.len();
        names.truncate(8);
        let more = if total > names.len() {
            format!(", … ({} more)", total - names.len())
        } else {
            String::new()
        };
        let stmts: u64 = bin.packages.iter().map(|p| p.statements).sum();
        out.push(Finding::new(
            "instrumented",
            Severity::Ok,
            format!(
                "built with -cover: {total} package{} instrumented ({stmts} statements): {}{more}",
                if total == 1 { "" } else { "s" },
                names.join(", ")
            ),
        ));

        let modes = bin.modes();
        let mode_list: Vec<&str> = modes.iter().map(String::as_str).collect();
        if mode_list.is_empty() {
            out.push(Finding::new(
                "cover-mode",
                Severity::Info,
                format!(
                    "counter mode not readable on {} (live scraping needs -covermode=atomic)",
                    bin.format
                ),
            ));
        } else if mode_list == ["atomic"] {
            out.push(Finding::new(
                "cover-mode",
                Severity::Ok,
                "counter mode atomic: counters can be read while the program runs",
            ));
        } else {
            out.push(
                Finding::new(
                    "cover-mode",
                    Severity::Warning,
                    format!(
                        "counter mode {}: a running program cannot serve its counters (runtime/coverage.WriteCounters requires atomic), so live collection fails; GOCOVERDIR at exit still works",
                        mode_list.join("+")
                    ),
                )
                .fix("build with -covermode=atomic"),
            );
        }

        if !test_binary && !bin.packages.iter().any(|p| p.name == "main") {
            out.push(
                Finding::new(
                    "main-not-instrumented",
                    Severity::Problem,
                    "package main is not instrumented (-coverpkg without it): Go installs its exit hook from main's coverage init, so nothing is written to GOCOVERDIR at exit (live scraping still works)",
                )
                .fix("include the main package in -coverpkg, e.g. -coverpkg=./... or -coverpkg=./cmd/server,./pkg/..."),
            );
        }
    }

    // The injected server's functions: `main._cov…` in a program,
    // `<import path>._cov…` in a test binary.
    let server =
        bin.has_function_prefix("main._cov") || bin.has_function_in_any_package("_covStart");
    if test_binary {
        let live = bin.has_function_in_any_package("_covHookTestBinary");
        let mut f = Finding::new(
            "test-binary",
            Severity::Info,
            if live {
                "a `go test -c` binary with covfleet's test-binary companion: started with COVERAGE_IN_TESTS=1 it serves live coverage; Go also writes coverage when the test run ends (-test.coverprofile=FILE or -test.gocoverdir=DIR)"
            } else if server {
                "a `go test -c` binary: Go writes coverage when the test run ends (-test.coverprofile=FILE or -test.gocoverdir=DIR); the injected server stays off unless COVERAGE_IN_TESTS=1, and even then has nothing to serve without the test-binary companion"
            } else {
                "a `go test -c` binary: Go writes coverage when the test run ends (-test.coverprofile=FILE or -test.gocoverdir=DIR)"
            },
        );
        if server && !live {
            f = f.fix("for live coverage: `covfleet instrument --test-binary SRC`, build with -tags covfleet_testbinary -ldflags=-checklinkname=0 (Go 1.23+), run with COVERAGE_IN_TESTS=1 (docs/test-binaries.md)");
        }
        out.push(f);
    }

    if !bin.has_pclntab {
        out.push(Finding::new(
            "functions-unknown",
            Severity::Info,
            "the Go function table was not found: cannot tell whether the coverage server and signal handling are linked in",
        ));
    } else {
        if server {
            out.push(Finding::new(
                "coverage-server",
                Severity::Ok,
                "contains the injected coverage server (live collection on port 53700+ or COVERAGE_PORT)",
            ));
        } else {
            out.push(
                Finding::new(
                    "no-coverage-server",
                    Severity::Warning,
                    "no injected coverage server: coverage can only come from GOCOVERDIR at a normal exit, not live",
                )
                .fix("run `covfleet instrument SRC` before building to inject the server into every package main"),
            );
        }
        if bin.has_function("os/signal.Notify") || bin.has_function("os/signal.NotifyContext") {
            out.push(Finding::new(
                "signal-handling",
                Severity::Info,
                if server {
                    "links os/signal.Notify (the injected server does, for its SIGTERM flush with COVERAGE_FLUSH_INTERVAL set): whether the program itself ends through a normal exit on SIGTERM (where Go writes counters) is what `--try-exit` checks"
                } else {
                    "links os/signal.Notify: the program catches some signal; whether SIGTERM ends it through a normal exit (where Go writes counters) is what `--try-exit` checks"
                },
            ));
        } else if !test_binary {
            out.push(
                Finding::new(
                    "no-signal-handling",
                    Severity::Warning,
                    "never calls os/signal.Notify: SIGTERM (kubectl delete, scaling to 0, docker stop, systemctl stop) kills it without a normal exit, so Go writes no counters to GOCOVERDIR",
                )
                .fix(FIX_SIGTERM),
            );
        }
    }

    match bin.dynamic {
        Some(false) => out.push(Finding::new(
            "static",
            Severity::Info,
            "statically linked: makes no difference to coverage",
        )),
        Some(true) => out.push(Finding::new(
            "dynamic",
            Severity::Info,
            "dynamically linked: makes no difference to coverage",
        )),
        None => {}
    }
    if bin.stripped {
        out.push(Finding::new(
            "stripped",
            Severity::Info,
            "symbol table stripped: makes no difference to coverage (the meta-data is data, not symbols)",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::go_minor;

    #[test]
    fn go_versions() {
        assert_eq!(go_minor("go1.19.13"), Some(19));
        assert_eq!(go_minor("go1.22rc1"), Some(22));
        assert_eq!(go_minor("devel +abc"), None);
    }
}
