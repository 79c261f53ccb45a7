//! Issue 5 end to end: distill jobs over HTTP — a shrunk student with its
//! same-job baseline, the streamed teacher path, a stored student, an
//! untrained teacher, and every class of bad distillation parameter.

use serde_json::{Value, json};

use crate::helpers::{TestApp, classes_csv, id, spawn_app};

/// 4 classes over 16 features; train and held-out test sets.
async fn datasets(app: &TestApp) -> (String, String) {
    let train = app
        .create_dataset("train.csv", classes_csv(1_500, 16, 4, 7), &[])
        .await;
    let test = app
        .create_dataset("test.csv", classes_csv(500, 16, 4, 8), &[])
        .await;
    (id(&train), id(&test))
}

fn teacher_arch() -> Value {
    json!({"input_dim": 16, "layers": [
        {"type": "dense", "units": 64, "activation": "relu"},
        {"type": "dropout", "rate": 0.2},
        {"type": "dense", "units": 64, "activation": "relu"},
        {"type": "dense", "units": 4, "activation": "softmax"}]})
}

async fn trained_teacher(app: &TestApp, train: &str, test: &str) -> String {
    let model = app.create_model(teacher_arch()).await;
    let done = app
        .run_job(
            json!({"kind": "train", "model": id(&model), "dataset": train, "eval_dataset": test,
                        "params": {"epochs": 20, "optimizer": {"name": "adam", "lr": 0.005}}}),
        )
        .await;
    done["result"]["model_id"]
        .as_str()
        .expect("model")
        .to_string()
}

fn number(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

#[tokio::test]
async fn a_shrunk_student_learns_from_its_teacher_and_is_compared_with_its_baseline() {
    let app = spawn_app().await;
    let (train, test) = datasets(&app).await;
    let teacher = trained_teacher(&app, &train, &test).await;
    let done = app
        .run_job(
            json!({"kind": "distill", "model": teacher, "dataset": train, "eval_dataset": test,
                        "params": {"shrink": 0.25, "baseline": true, "epochs": 15,
                                   "optimizer": {"name": "adam", "lr": 0.01}}}),
        )
        .await;
    let (before, after) = (&done["result"]["before"], &done["result"]["metrics"]);

    // The student is the teacher with every hidden layer a quarter as wide.
    let units: Vec<u64> = after["architecture"]["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter_map(|l| l["units"].as_u64())
        .collect();
    assert_eq!(units, vec![16, 16, 4]);
    assert_eq!(after["distillation"]["student"]["shrink"], json!(0.25));
    assert!(number(&after["params"], "params") < number(&before["params"], "params") / 8.0);
    assert!(number(&after["size_bytes"], "size") < number(&before["size_bytes"], "size"));

    // Side by side: teacher, student and the same student trained without the teacher.
    for who in ["teacher", "student", "baseline"] {
        let row = &after["comparison"][who];
        for key in [
            "accuracy",
            "params",
            "size_bytes",
            "latency_us_b1",
            "throughput_b1024",
        ] {
            assert!(row[key].is_number(), "{who}.{key} in {row}");
        }
    }
    assert_eq!(
        after["comparison"]["teacher"]["accuracy"],
        before["accuracy"]
    );
    let baseline = &done["result"]["baseline"];
    assert!(baseline["accuracy"].is_number() && baseline["agreement_with_teacher"].is_number());
    assert_eq!(baseline["epochs_run"], json!(15));
    let gain = number(&after["accuracy"], "acc") - number(&baseline["accuracy"], "acc");
    assert!(
        (number(&after["verdict"]["student_minus_baseline"], "gain") - gain).abs() < 1e-12,
        "{}",
        after["verdict"]
    );
    assert_eq!(after["verdict"]["helped"], json!(gain >= 0.0));
    let headroom = number(&before["accuracy"], "teacher") - number(&baseline["accuracy"], "acc");
    let reported = number(&after["verdict"]["teacher_minus_baseline"], "headroom");
    assert!((reported - headroom).abs() < 1e-12, "{}", after["verdict"]);
    let summary = after["verdict"]["summary"].as_str().expect("summary");
    assert!(
        summary.contains(if gain >= 0.0 {
            "helped"
        } else {
            "did not help"
        }),
        "{summary}"
    );

    // The teacher is trained, its soft targets fit the default budget, and the
    // distilled student follows it closely on held-out rows.
    assert_eq!(after["teacher"]["trained"], json!(true));
    assert_eq!(after["warnings"], json!([]));
    assert_eq!(after["distillation"]["teacher_outputs"], "cached");
    assert_eq!(
        after["distillation"]["teacher_cache_bytes"],
        json!(1_500 * 4 * 4)
    );
    assert!(
        number(&after["agreement_with_teacher"], "agreement") > 0.8,
        "{after}"
    );
    assert!(number(&after["accuracy"], "acc") > 0.7, "{after}");

    // Both trainings left per-epoch metrics; the student's model is a normal model.
    let metrics: Value = app
        .get(&format!("/v1/jobs/{}/metrics", id(&done)))
        .await
        .json()
        .await
        .expect("json");
    let text = metrics.to_string();
    assert!(
        text.contains("\"loss\"") && text.contains("baseline_loss"),
        "{text}"
    );
    let student = done["result"]["model_id"].as_str().expect("student");
    let outputs = app.predict(student, &json!([vec![0.5f32; 16]])).await;
    let row = outputs[0].as_array().expect("row");
    assert_eq!(row.len(), 4);
    let total: f64 = row.iter().map(|p| number(p, "p")).sum();
    assert!((total - 1.0).abs() < 1e-4, "{row:?}");
}

#[tokio::test]
async fn the_streamed_teacher_path_trains_the_same_student_as_the_cached_one() {
    let app = spawn_app().await;
    let (train, test) = datasets(&app).await;
    let teacher = trained_teacher(&app, &train, &test).await;
    let job = |budget: u64| {
        json!({"kind": "distill", "model": teacher, "dataset": train, "eval_dataset": test,
               "params": {"shrink": 0.5, "epochs": 3, "teacher_cache_bytes": budget}})
    };
    let cached = app.run_job(job(1 << 20)).await;
    let streamed = app.run_job(job(0)).await;
    let (c, s) = (&cached["result"]["metrics"], &streamed["result"]["metrics"]);
    assert_eq!(c["distillation"]["teacher_outputs"], "cached");
    assert_eq!(s["distillation"]["teacher_outputs"], "streamed");
    assert_eq!(s["distillation"]["teacher_cache_bytes"], json!(0));
    assert_eq!(c["loss"], s["loss"], "same soft targets, same training");
    assert_eq!(c["accuracy"], s["accuracy"]);
}

#[tokio::test]
async fn a_stored_student_and_an_untrained_teacher_are_accepted_and_reported() {
    let app = spawn_app().await;
    let (train, test) = datasets(&app).await;
    let untrained = app.create_model(teacher_arch()).await;
    let student = app
        .create_model(json!({"input_dim": 16, "layers": [
            {"type": "dense", "units": 8, "activation": "relu"},
            {"type": "dense", "units": 4, "activation": "softmax"}]}))
        .await;
    let done = app
        .run_job(json!({"kind": "distill", "model": id(&untrained), "dataset": train, "eval_dataset": test,
                        "params": {"student": id(&student), "epochs": 2}}))
        .await;
    // The job record names the stored student with its architecture.
    assert_eq!(done["params"]["student"]["model"], json!(id(&student)));
    assert_eq!(
        done["params"]["student"]["architecture"]["input_dim"],
        json!(16)
    );
    let after = &done["result"]["metrics"];
    assert_eq!(after["params"], student["params"]);
    assert_eq!(after["teacher"]["trained"], json!(false));
    let warnings = after["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0]
            .as_str()
            .is_some_and(|w| w.contains("not trained")),
        "{warnings:?}"
    );
    assert_eq!(done["result"]["before"]["trained"], json!(false));
}

#[tokio::test]
async fn bad_distillation_parameters_get_a_422_naming_the_field() {
    let app = spawn_app().await;
    let (train, _) = datasets(&app).await;
    let teacher = app.create_model(teacher_arch()).await;
    let wide_student = app
        .create_model(json!({"input_dim": 17, "layers": [
            {"type": "dense", "units": 4, "activation": "softmax"}]}))
        .await;
    let job = |params: Value| json!({"kind": "distill", "model": id(&teacher), "dataset": train, "params": params});
    let arch = |input_dim: usize, outputs: usize| {
        json!({"input_dim": input_dim, "layers": [
            {"type": "dense", "units": 8, "activation": "relu"},
            {"type": "dense", "units": outputs, "activation": "softmax"}]})
    };
    let missing = uuid::Uuid::now_v7().to_string();
    let cases = [
        (json!({"temperature": 0}), "params.temperature"),
        (json!({"temperature": "hot"}), "params.temperature"),
        (json!({"alpha": 1.5}), "params.alpha"),
        (json!({"shrink": 0}), "params.shrink"),
        (json!({"shrink": 1.5}), "params.shrink"),
        (
            json!({"shrink": 0.5, "student": arch(16, 4)}),
            "params.shrink",
        ),
        (json!({"student": arch(15, 4)}), "params.student.input_dim"),
        (json!({"student": arch(16, 3)}), "params.student.layers"),
        (
            json!({"student": {"input_dim": 16, "layers": []}}),
            "params.student.layers",
        ),
        (json!({"student": "not-a-model"}), "params.student"),
        (json!({"student": missing}), "params.student"),
        (json!({"student": id(&wide_student)}), "params.student"),
        (json!({"student": 3}), "params.student"),
        (json!({"baseline": "yes"}), "params.baseline"),
        (
            json!({"teacher_cache_bytes": -1}),
            "params.teacher_cache_bytes",
        ),
        (json!({"epochs": 0}), "params.epochs"),
        (
            json!({"optimizer": {"name": "adam", "lr": -1}}),
            "params.optimizer.lr",
        ),
        (json!({"temprature": 4}), "params.temprature"),
    ];
    for (params, field) in cases {
        app.assert_job_rejected(&job(params), field).await;
    }
}

/// `rows` of 6 features with a smooth target, as CSV (label last).
fn regression_csv(rows: usize, seed: u64) -> Vec<u8> {
    let mut out = String::from("a,b,c,d,e,f,y\n");
    for r in 0..rows {
        let x: Vec<f32> = (0..6)
            .map(|c| (((r as u64 * 7 + c * 13 + seed * 101) as f32) * 0.37).sin())
            .collect();
        let y = 2.0 * x[0] - x[1] * x[2] + 0.5 * x[3];
        let cells: Vec<String> = x.iter().chain([&y]).map(|v| v.to_string()).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out.into_bytes()
}

#[tokio::test]
async fn the_binary_and_regression_analogues_distill_end_to_end() {
    let app = spawn_app().await;

    // Binary, sigmoid head: the Bernoulli KL of the softened probabilities.
    let (train, test, teacher) = app
        .trained_fixture(800, 10, 3, crate::helpers::mlp(10, 48, 1, "sigmoid"))
        .await;
    let done = app
        .run_job(
            json!({"kind": "distill", "model": teacher, "dataset": train, "eval_dataset": test,
                        "params": {"shrink": 0.25, "baseline": true, "epochs": 10}}),
        )
        .await;
    let m = &done["result"]["metrics"];
    assert_eq!(m["architecture"]["layers"][0]["units"], json!(12));
    assert!(number(&m["accuracy"], "acc") > 0.8, "{m}");
    assert!(
        number(&m["agreement_with_teacher"], "agreement") > 0.8,
        "{m}"
    );
    assert!(
        m["auc"].is_number() && done["result"]["baseline"]["auc"].is_number(),
        "{m}"
    );

    // Regression: MSE against the labels and against the teacher's outputs; the
    // main metric is R², and agreement is the mean squared difference from the teacher.
    let train = app
        .create_dataset("r.csv", regression_csv(600, 1), &[("task", "regression")])
        .await;
    let test = app
        .create_dataset("rt.csv", regression_csv(200, 2), &[("task", "regression")])
        .await;
    assert_eq!(train["task"], "regression");
    let model = app
        .create_model(crate::helpers::mlp(6, 32, 1, "linear"))
        .await;
    let trained = app
        .run_job(
            json!({"kind": "train", "model": id(&model), "dataset": id(&train),
                        "params": {"epochs": 40, "optimizer": {"name": "adam", "lr": 0.01}}}),
        )
        .await;
    let teacher = trained["result"]["model_id"].as_str().expect("teacher");
    let done = app
        .run_job(json!({"kind": "distill", "model": teacher, "dataset": id(&train), "eval_dataset": id(&test),
                        "params": {"shrink": 0.5, "alpha": 0.3, "epochs": 40,
                                   "optimizer": {"name": "adam", "lr": 0.01}}}))
        .await;
    let m = &done["result"]["metrics"];
    assert!(number(&m["r2"], "r2") > 0.5, "{m}");
    assert!(m["comparison"]["teacher"]["r2"].is_number(), "{m}");
    let gap = number(&m["agreement_with_teacher"], "mean squared difference");
    assert!(gap >= 0.0 && gap < number(&m["mse"], "mse") + 1.0, "{m}");
    assert!(
        m["verdict"]["summary"]
            .as_str()
            .is_some_and(|s| s.contains("R²")),
        "{m}"
    );
}
