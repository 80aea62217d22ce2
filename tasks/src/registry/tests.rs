use super::*;

fn entry(id: &str, key: &str) -> Entry {
    Entry {
        id: id.into(),
        name: "n".into(),
        description: String::new(),
        model_size: "nano".into(),
        hyperparameters: Default::default(),
        experiment_key: key.into(),
        node_key: None,
        instance: Some("train".into()),
        slurm_job_id: None,
        status: Status::Completed,
        output_dir: format!("checkpoints/{id}"),
        log_path: None,
        best: None,
        metrics_problems: Vec::new(),
        gpu_hours: None,
        gpus: None,
        provenance: Provenance::default(),
        created_at: String::new(),
        updated_at: String::new(),
    }
}

#[test]
fn ids_are_reused_per_config_suffixed_on_collision_and_fresh_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let store = RegistryStore::new(dir.path());
    let ids = RunIds::locked(store.clone(), false);
    let a = ids
        .run_for("train[a]", "k1", "exp", |id| entry(id, "k1"))
        .unwrap();
    let b = ids
        .run_for("train[b]", "k2", "exp", |id| entry(id, "k2"))
        .unwrap();
    assert!(!a.existing && !b.existing);
    assert_eq!(
        b.run_id,
        format!("{}-2", a.run_id),
        "same name, same second"
    );
    // A directory the registry does not know is never reused.
    std::fs::create_dir_all(
        dir.path()
            .join("checkpoints")
            .join(format!("{}-3", a.run_id)),
    )
    .unwrap();
    let c = ids
        .run_for("train[c]", "k3", "exp", |id| entry(id, "k3"))
        .unwrap();
    assert_eq!(c.run_id, format!("{}-4", a.run_id));
    assert_eq!(
        ids.register(&["train[a]", "train[b]"]).unwrap(),
        [a.run_id.clone(), b.run_id.clone()]
    );
    let reg = store.read().unwrap();
    assert_eq!(
        reg.experiments.len(),
        2,
        "only the runs about to run are registered"
    );
    // The next command finds the run of the same config again.
    let again = RunIds::peek(store.clone());
    let a2 = again
        .run_for("train[a]", "k1", "exp", |id| entry(id, "k1"))
        .unwrap();
    assert!(a2.existing);
    assert_eq!(a2.run_id, a.run_id);
    // `--new` allocates a fresh one.
    let fresh = RunIds::locked(store.clone(), true);
    let a3 = fresh
        .run_for("train[a]", "k1", "exp", |id| entry(id, "k1"))
        .unwrap();
    assert!(!a3.existing);
    assert_ne!(a3.run_id, a.run_id);
    fresh.release();
    // A read-only look writes nothing.
    assert!(again.register(&["train[a]"]).unwrap().is_empty());
}

#[test]
fn a_corrupt_or_newer_registry_is_reported_and_failed_changes_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = RegistryStore::new(dir.path());
    store
        .update(|r| r.experiments.push(entry("x-1", "k")))
        .unwrap();
    let before = std::fs::read_to_string(store.path()).unwrap();
    let out: Result<Result<(), String>, _> = store.try_update(|r| {
        r.experiments.clear();
        Err("no".to_string())
    });
    assert!(out.unwrap().is_err());
    assert_eq!(std::fs::read_to_string(store.path()).unwrap(), before);

    std::fs::write(store.path(), "{\"version\": 1,\n \"experiments\": [,]}").unwrap();
    let err = store.read().unwrap_err().to_string();
    assert!(err.contains("registry.json:2:"), "{err}");
    assert!(err.contains("help:"), "{err}");
    std::fs::write(store.path(), "{\"version\": 9, \"experiments\": []}").unwrap();
    let err = store.read().unwrap_err().to_string();
    assert!(err.contains("version 9"), "{err}");
}

#[test]
fn legacy_registries_in_several_shapes_import() {
    let mut reg = Registry::default();
    let list = r#"[{"id": "a", "status": "FAILED", "model": "small", "job_id": 7}]"#;
    let out = import_legacy_registry(&mut reg, list, "old.json").unwrap();
    assert_eq!(out, [Imported::Added("a".into())]);
    let map = r#"{"b": {"name": "b", "config": {"training": {"lr": 0.001}}, "best_metrics": {"best_mask_map": 0.2}}}"#;
    import_legacy_registry(&mut reg, map, "old.json").unwrap();
    let again = import_legacy_registry(&mut reg, list, "old.json").unwrap();
    assert_eq!(again, [Imported::Known("a".into())]);
    assert_eq!(reg.experiments.len(), 2);
    let a = reg.get("a").unwrap();
    assert_eq!((a.status, a.model_size.as_str()), (Status::Failed, "small"));
    assert_eq!(a.slurm_job_id.as_deref(), Some("7"));
    let b = reg.get("b").unwrap();
    assert_eq!(b.hyperparameters["training.lr"], 0.001);
    assert_eq!(b.best.as_ref().unwrap().mask_map, Some(0.2));
    let err = import_legacy_registry(&mut reg, "[{\"status\": \"x\"}]", "old.json").unwrap_err();
    assert!(err.contains("neither an id nor a name"), "{err}");
}
