//! The release guard in `tidegate-bench`: `--max-ingress-cpu-us` makes the
//! benchmark exit non-zero when the ingress spends more CPU per delivery
//! than the budget. This checks the guard's verdict, not the speed: the
//! budgets are far below and far above any real figure.

use std::time::Duration;

use crate::process::binary;

/// Runs a one-second ingress benchmark with `budget` µs per delivery.
async fn bench_with_budget(budget: &str) -> (bool, String) {
    let run = tokio::process::Command::new(binary("tidegate-bench"))
        .args(["--mode", "ingress", "--duration", "1", "--connections", "2"])
        .args(["--max-ingress-cpu-us", budget])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the benchmark ends within two minutes")
        .expect("tidegate-bench runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test]
async fn an_ingress_over_its_cpu_budget_fails_the_benchmark() {
    let (passed, output) = bench_with_budget("0.001").await;
    assert!(!passed, "a 1 ns budget cannot be met:\n{output}");
    assert!(output.contains("CPU guard: ingress"), "{output}");
    assert!(output.contains("over the 0.0 µs budget"), "{output}");
    // The deliveries themselves were all stored: the failure is the guard's.
    assert!(output.contains("zero loss: stream +"), "{output}");
    assert!(!output.contains("FAIL\n  zero loss"), "{output}");
}

#[tokio::test]
async fn an_ingress_within_its_cpu_budget_passes() {
    let (passed, output) = bench_with_budget("10000000").await;
    assert!(
        passed,
        "a 10 s per delivery budget is always met:\n{output}"
    );
    assert!(output.contains("budget 10000000.0 µs: PASS"), "{output}");
}
