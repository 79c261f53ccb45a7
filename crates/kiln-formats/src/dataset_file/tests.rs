use std::io::Cursor;
use std::path::PathBuf;

use ndarray::{Array1, Array2, array};
use ndarray_npy::NpzWriter;

use super::*;

fn options() -> ParseOptions {
    ParseOptions {
        filename: None,
        label_column: None,
        task: None,
        max_rows: 1000,
        max_features: 100,
        layout: None,
        input_shape: None,
    }
}

struct Upload {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn upload(bytes: &[u8]) -> Upload {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upload");
    std::fs::write(&path, bytes).unwrap();
    Upload { _dir: dir, path }
}

fn parse(bytes: &[u8], options: &ParseOptions) -> Result<ParsedDataset, Invalid> {
    parse_bytes(bytes, options)
}

/// The field and message of the single error.
fn error(bytes: &[u8], options: &ParseOptions) -> (String, String) {
    let err = parse(bytes, options).expect_err("should be rejected");
    assert_eq!(err.0.len(), 1, "{err:?}");
    (err.0[0].field.clone(), err.0[0].message.clone())
}

fn npz_bytes(build: impl FnOnce(&mut NpzWriter<Cursor<Vec<u8>>>)) -> Vec<u8> {
    let mut w = NpzWriter::new(Cursor::new(Vec::new()));
    build(&mut w);
    w.finish().unwrap().into_inner()
}

#[test]
fn a_csv_with_a_header_becomes_a_dataset_labelled_by_its_last_column() {
    let parsed = parse(b"a,b,label\n1,2,0\n3.5,-4,1\n0,0,1\n", &options()).unwrap();
    assert_eq!(parsed.format, DatasetFormat::Csv);
    assert_eq!(
        parsed.dataset.x,
        array![[1.0, 2.0], [3.5, -4.0], [0.0, 0.0]]
    );
    assert_eq!(parsed.dataset.y, array![0.0, 1.0, 1.0]);
    assert_eq!(parsed.dataset.task, Task::Binary);
    assert_eq!(parsed.dataset.classes, 2);
    assert_eq!(parsed.label_column.as_deref(), Some("label"));
    assert_eq!(
        parsed.feature_names,
        Some(vec!["a".to_string(), "b".to_string()])
    );
}

#[test]
fn a_named_label_column_may_be_anywhere() {
    let opts = ParseOptions {
        label_column: Some("y".into()),
        ..options()
    };
    let parsed = parse(b"y,a,b\n2.5,1,2\n-1,3,4\n", &opts).unwrap();
    assert_eq!(parsed.dataset.x, array![[1.0, 2.0], [3.0, 4.0]]);
    assert_eq!(parsed.dataset.y, array![2.5, -1.0]);
    assert_eq!(parsed.dataset.task, Task::Regression);
    assert_eq!(parsed.dataset.classes, 0);
}

#[test]
fn csv_with_a_ragged_row_is_rejected_naming_the_line() {
    let (field, msg) = error(
        b"a,b,c,d,y\n1,2,3,4,0\n1,2,3,4,1\n1,2,3,4,0\n1,2,3,4,1\n1,2,3,4,0\n1,2,3,0\n",
        &options(),
    );
    assert_eq!(field, "file");
    assert_eq!(msg, "line 7: expected 5 fields, found 4");
}

#[test]
fn a_value_that_is_not_a_number_is_rejected_naming_line_and_column() {
    let (field, msg) = error(b"x1,x2,y\n1,2,0\n1,abc,1\n", &options());
    assert_eq!(field, "file");
    assert_eq!(msg, "line 3, column `x2`: `abc` is not a number");
}

#[test]
fn nan_and_infinity_are_rejected_in_a_csv() {
    for bad in ["NaN", "inf", "-Infinity", "1e40"] {
        let csv = format!("x1,x2,y\n1,2,0\n1,{bad},1\n");
        let (field, msg) = error(csv.as_bytes(), &options());
        assert_eq!(field, "file");
        assert!(
            msg.starts_with("line 3, column `x2`:") && msg.contains("finite"),
            "{msg}"
        );
    }
    let (_, msg) = error(b"x1,y\n1,\n", &options());
    assert_eq!(msg, "line 2, column `y`: the value is empty");
}

#[test]
fn an_empty_file_is_rejected() {
    let (field, msg) = error(b"", &options());
    assert_eq!(field, "file");
    assert!(msg.contains("empty"), "{msg}");
}

#[test]
fn a_csv_with_only_a_header_is_rejected() {
    let (field, msg) = error(b"a,b,y\n", &options());
    assert_eq!(field, "file");
    assert!(msg.contains("no data rows"), "{msg}");
}

#[test]
fn an_unknown_label_column_names_the_label_column_field() {
    let opts = ParseOptions {
        label_column: Some("target".into()),
        ..options()
    };
    let (field, msg) = error(b"a,b,y\n1,2,0\n", &opts);
    assert_eq!(field, "label_column");
    assert!(msg.contains("`target`") && msg.contains("`y`"), "{msg}");
}

#[test]
fn a_csv_with_one_column_has_no_features() {
    let (field, _) = error(b"y\n1\n2\n", &options());
    assert_eq!(field, "file");
}

#[test]
fn blank_lines_are_skipped_and_lines_are_counted_from_the_header() {
    let (_, msg) = error(b"a,y\n1,0\n\n2,x\n", &options());
    assert_eq!(msg, "line 4, column `y`: `x` is not a number");
}

#[test]
fn too_many_rows_or_features_name_the_file() {
    let opts = ParseOptions {
        max_rows: 2,
        ..options()
    };
    let (field, msg) = error(b"a,y\n1,0\n2,1\n3,0\n", &opts);
    assert_eq!(field, "file");
    assert!(msg.contains("more than 2 rows"), "{msg}");
    let opts = ParseOptions {
        max_features: 1,
        ..options()
    };
    let (field, msg) = error(b"a,b,y\n1,2,0\n", &opts);
    assert_eq!(field, "file");
    assert!(msg.contains("at most 1"), "{msg}");
}

#[test]
fn the_task_is_inferred_from_the_labels() {
    let task = |y: Vec<f32>| infer_task(&Array1::from(y));
    assert_eq!(task(vec![0.0, 1.0, 1.0]), Task::Binary);
    assert_eq!(task(vec![0.0, 1.0, 2.0, 2.0]), Task::Multiclass);
    assert_eq!(task(vec![1.0, 2.0, 3.0]), Task::Multiclass);
    assert_eq!(task(vec![1.0, 2.0]), Task::Regression);
    assert_eq!(task(vec![0.5, 1.0, 2.0]), Task::Regression);
    assert_eq!(task(vec![-1.0, 0.0, 1.0]), Task::Regression);
    assert_eq!(task(vec![0.0, 1.0, 5000.0]), Task::Regression);
    assert_eq!(task(vec![3.0, 3.0]), Task::Regression);
    let parsed = parse(b"a,y\n1,0\n2,4\n3,2\n", &options()).unwrap();
    assert_eq!(parsed.dataset.task, Task::Multiclass);
    assert_eq!(parsed.dataset.classes, 5);
}

#[test]
fn an_explicit_binary_task_with_labels_one_and_two_names_the_task_field() {
    let opts = ParseOptions {
        task: Some(Task::Binary),
        ..options()
    };
    let (field, msg) = error(b"a,y\n1,1\n2,2\n", &opts);
    assert_eq!(field, "task");
    assert!(msg.contains("0 or 1"), "{msg}");
}

#[test]
fn an_explicit_multiclass_task_needs_non_negative_integer_labels() {
    let opts = ParseOptions {
        task: Some(Task::Multiclass),
        ..options()
    };
    let (field, _) = error(b"a,y\n1,0\n2,1.5\n", &opts);
    assert_eq!(field, "task");
    let (field, _) = error(b"a,y\n1,0\n2,-1\n", &opts);
    assert_eq!(field, "task");
    // Two classes are fine when asked for explicitly.
    let parsed = parse(b"a,y\n1,0\n2,1\n", &opts).unwrap();
    assert_eq!(
        (parsed.dataset.task, parsed.dataset.classes),
        (Task::Multiclass, 2)
    );
}

#[test]
fn an_explicit_regression_task_keeps_integer_labels_as_numbers() {
    let opts = ParseOptions {
        task: Some(Task::Regression),
        ..options()
    };
    let parsed = parse(b"a,y\n1,0\n2,1\n", &opts).unwrap();
    assert_eq!(
        (parsed.dataset.task, parsed.dataset.classes),
        (Task::Regression, 0)
    );
}

#[test]
fn an_npz_with_x_and_y_becomes_a_dataset_whatever_the_dtypes() {
    let bytes = npz_bytes(|w| {
        w.add_array("X", &array![[1.0f64, 2.0], [3.0, 4.0], [5.0, 6.0]])
            .unwrap();
        w.add_array("y", &array![[0i64], [2], [1]]).unwrap();
    });
    let parsed = parse(&bytes, &options()).unwrap();
    assert_eq!(parsed.format, DatasetFormat::Npz);
    assert_eq!(
        parsed.dataset.x,
        array![[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0]]
    );
    assert_eq!(parsed.dataset.y, array![0.0f32, 2.0, 1.0]);
    assert_eq!(parsed.dataset.task, Task::Multiclass);
    assert_eq!(parsed.dataset.classes, 3);
    assert_eq!(parsed.label_column, None);

    let mut w = NpzWriter::new_compressed(Cursor::new(Vec::new()));
    w.add_array("x", &array![[1.0f32], [2.0]]).unwrap();
    w.add_array("y", &array![0u8, 1]).unwrap();
    let compressed = w.finish().unwrap().into_inner();
    let parsed = parse(&compressed, &options()).unwrap();
    assert_eq!(parsed.dataset.task, Task::Binary);
}

#[test]
fn a_truncated_npz_is_rejected_naming_the_file() {
    let bytes = npz_bytes(|w| {
        w.add_array("x", &Array2::<f32>::zeros((50, 4))).unwrap();
        w.add_array("y", &Array1::<f32>::zeros(50)).unwrap();
    });
    for cut in [bytes.len() / 2, 10, 4] {
        let (field, msg) = error(&bytes[..cut], &options());
        assert_eq!(field, "file");
        assert!(msg.contains("NPZ") || msg.contains("truncated"), "{msg}");
    }
    let named = ParseOptions {
        filename: Some("data.npz".into()),
        ..options()
    };
    let (field, msg) = error(b"not a zip at all", &named);
    assert_eq!(field, "file");
    assert!(msg.contains("NPZ"), "{msg}");
}

#[test]
fn an_npz_whose_arrays_disagree_on_rows_is_rejected() {
    let bytes = npz_bytes(|w| {
        w.add_array("x", &Array2::<f32>::zeros((5, 2))).unwrap();
        w.add_array("y", &Array1::<f32>::zeros(4)).unwrap();
    });
    let (field, msg) = error(&bytes, &options());
    assert_eq!(field, "file");
    assert!(msg.contains("5 and 4"), "{msg}");
}

#[test]
fn an_npz_without_x_or_with_a_bad_shape_is_rejected() {
    let bytes = npz_bytes(|w| w.add_array("y", &Array1::<f32>::zeros(4)).unwrap());
    let (field, msg) = error(&bytes, &options());
    assert_eq!(field, "file");
    assert!(msg.contains("`x`"), "{msg}");
    let bytes = npz_bytes(|w| {
        w.add_array("x", &Array1::<f32>::zeros(4)).unwrap();
        w.add_array("y", &Array1::<f32>::zeros(4)).unwrap();
    });
    let (field, msg) = error(&bytes, &options());
    assert_eq!(field, "file");
    assert!(msg.contains("2 dimensions"), "{msg}");
}

#[test]
fn non_finite_values_in_an_npz_are_rejected() {
    let bytes = npz_bytes(|w| {
        w.add_array("x", &array![[1.0f32, f32::NAN]]).unwrap();
        w.add_array("y", &array![1.0f32]).unwrap();
    });
    let (field, msg) = error(&bytes, &options());
    assert_eq!(field, "file");
    assert!(
        msg.contains("non-finite") && msg.contains("row 0, column 1"),
        "{msg}"
    );
    let bytes = npz_bytes(|w| {
        w.add_array("x", &array![[1.0f32]]).unwrap();
        w.add_array("y", &array![f64::INFINITY]).unwrap();
    });
    let (field, _) = error(&bytes, &options());
    assert_eq!(field, "file");
}

#[test]
fn npz_labels_out_of_range_for_the_task_are_rejected() {
    let bytes = npz_bytes(|w| {
        w.add_array("x", &Array2::<f32>::zeros((3, 2))).unwrap();
        w.add_array("y", &array![0i32, 1, 3]).unwrap();
    });
    let opts = ParseOptions {
        task: Some(Task::Binary),
        ..options()
    };
    let (field, msg) = error(&bytes, &opts);
    assert_eq!(field, "task");
    assert!(msg.contains("row 3"), "{msg}");
}

#[test]
fn label_column_is_refused_for_an_npz() {
    let bytes = npz_bytes(|w| {
        w.add_array("x", &Array2::<f32>::zeros((2, 2))).unwrap();
        w.add_array("y", &array![0i32, 1]).unwrap();
    });
    let opts = ParseOptions {
        label_column: Some("y".into()),
        ..options()
    };
    assert_eq!(error(&bytes, &opts).0, "label_column");
}

#[test]
fn the_normalised_form_reads_back_exactly() {
    let dataset = Dataset {
        x: array![[1.0f32, 2.5], [-3.0, 4.0]],
        y: array![0.0f32, 2.0],
        task: Task::Multiclass,
        classes: 3,
        input_shape: None,
    };
    let bytes = write_npz(&dataset).unwrap();
    assert_eq!(read_npz(&bytes).unwrap(), dataset);
}

#[test]
fn a_local_file_parses_like_its_bytes() {
    let csv = b"a,b,label\n1,2,0\n3,4,1\n";
    let up = upload(csv);
    let from_file = parse_path(&up.path, &options()).unwrap();
    assert_eq!(from_file.dataset, parse(csv, &options()).unwrap().dataset);
    let missing = parse_path(&up.path.with_file_name("missing"), &options()).unwrap_err();
    assert_eq!(missing.0[0].field, "file");
}

#[test]
fn an_npz_header_claiming_an_absurd_shape_is_rejected_before_anything_is_allocated() {
    use std::io::Write;
    let npy = |shape: &str| {
        let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&[0u8; 16]);
        out
    };
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("x.npy", stored).unwrap();
    zip.write_all(&npy("(4000000000000, 3)")).unwrap();
    zip.start_file("y.npy", stored).unwrap();
    zip.write_all(&npy("(4000000000000,)")).unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    let opts = ParseOptions {
        max_rows: usize::MAX,
        max_features: usize::MAX,
        ..options()
    };
    let (field, msg) = error(&bytes, &opts);
    assert_eq!(field, "file");
    assert!(msg.contains("at most"), "{msg}");
    let (field, msg) = error(&bytes, &options());
    assert_eq!(field, "file");
    assert!(msg.contains("rows; at most 1000"), "{msg}");
}

fn image_npz(x: ndarray::ArrayD<f32>, rows: usize) -> Vec<u8> {
    npz_bytes(|w| {
        w.add_array("x", &x).unwrap();
        w.add_array("y", &Array1::from_shape_fn(rows, |i| (i % 2) as f32))
            .unwrap();
    })
}

#[test]
fn image_npz_arrays_become_channels_first_rows_with_their_shape() {
    use ndarray::Array;
    // [N, H, W]: one channel.
    let x = Array::from_shape_fn((4, 2, 3), |(n, h, w)| (n * 100 + h * 10 + w) as f32);
    let parsed = parse(&image_npz(x.into_dyn(), 4), &options()).unwrap();
    assert_eq!(parsed.dataset.input_shape, Some(vec![1, 2, 3]));
    assert_eq!(parsed.dataset.features(), 6);
    assert_eq!(
        parsed.dataset.x.row(3).to_vec(),
        [300., 301., 302., 310., 311., 312.]
    );

    // [N, H, W, C] named as such: channel c of pixel (h, w) lands at c·H·W + h·W + w.
    let nhwc = Array::from_shape_fn((2, 2, 2, 3), |(n, h, w, c)| {
        (n * 1000 + c * 100 + h * 10 + w) as f32
    });
    let opts = ParseOptions {
        layout: Some(Layout::Nhwc),
        ..options()
    };
    let parsed = parse(&image_npz(nhwc.clone().into_dyn(), 2), &opts).unwrap();
    assert_eq!(parsed.dataset.input_shape, Some(vec![3, 2, 2]));
    let expected: Vec<f32> = (0..3)
        .flat_map(|c| {
            (0..2).flat_map(move |h| (0..2).map(move |w| (1000 + c * 100 + h * 10 + w) as f32))
        })
        .collect();
    assert_eq!(parsed.dataset.x.row(1).to_vec(), expected);

    // The same array read with the default layout is [C=2, H=2, W=3].
    let parsed = parse(&image_npz(nhwc.into_dyn(), 2), &options()).unwrap();
    assert_eq!(parsed.dataset.input_shape, Some(vec![2, 2, 3]));

    // The normalised form keeps the shape.
    let back = read_npz(&write_npz(&parsed.dataset).unwrap()).unwrap();
    assert_eq!(back, parsed.dataset);
}

#[test]
fn csv_rows_are_images_when_given_an_input_shape() {
    let csv = b"p0,p1,p2,p3,label\n0,1,2,3,0\n4,5,6,7,1\n";
    let opts = ParseOptions {
        input_shape: Some(vec![1, 2, 2]),
        ..options()
    };
    let parsed = parse(csv, &opts).unwrap();
    assert_eq!(parsed.dataset.input_shape, Some(vec![1, 2, 2]));
    assert_eq!(parsed.dataset.x, array![[0., 1., 2., 3.], [4., 5., 6., 7.]]);
    // Channels-last rows: [H=1, W=2, C=2] → [C, H, W].
    let opts = ParseOptions {
        input_shape: Some(vec![2, 1, 2]),
        layout: Some(Layout::Nhwc),
        ..options()
    };
    let parsed = parse(csv, &opts).unwrap();
    assert_eq!(parsed.dataset.x, array![[0., 2., 1., 3.], [4., 6., 5., 7.]]);
    assert!(
        parse(csv, &options())
            .unwrap()
            .dataset
            .input_shape
            .is_none()
    );
}

#[test]
fn image_shapes_that_do_not_fit_the_file_are_rejected_by_field() {
    use ndarray::Array;
    let csv = b"p0,p1,p2,p3,label\n0,1,2,3,0\n4,5,6,7,1\n";
    let wrong_size = ParseOptions {
        input_shape: Some(vec![1, 3, 3]),
        ..options()
    };
    let (field, msg) = error(csv, &wrong_size);
    assert_eq!(field, "input_shape");
    assert!(
        msg.contains("9 values") && msg.contains("4 features"),
        "{msg}"
    );

    let layout_alone = ParseOptions {
        layout: Some(Layout::Nhwc),
        ..options()
    };
    let (field, msg) = error(csv, &layout_alone);
    assert_eq!(field, "layout");
    assert!(msg.contains("input_shape"), "{msg}");

    let x = Array::<f32, _>::zeros((2, 1, 2, 2)).into_dyn();
    let disagrees = ParseOptions {
        input_shape: Some(vec![2, 2, 1]),
        ..options()
    };
    let (field, msg) = error(&image_npz(x, 2), &disagrees);
    assert_eq!(field, "input_shape");
    assert!(msg.contains("[1, 2, 2]"), "{msg}");

    let five_d = Array::<f32, _>::zeros((2, 1, 1, 2, 2)).into_dyn();
    let (field, msg) = error(&image_npz(five_d, 2), &options());
    assert_eq!(field, "file");
    assert!(msg.contains("[rows, C, H, W]"), "{msg}");

    let too_wide = Array::<f32, _>::zeros((2, 1, 20, 20)).into_dyn();
    let (field, msg) = error(&image_npz(too_wide, 2), &options());
    assert_eq!(field, "file");
    assert!(msg.contains("400 features"), "{msg}");
}
