from dgl_ray import checkpoint as ckpt
from dgl_ray.batched import run_trial
from dgl_ray.trainer import Trial


def test_resume_reads_a_checkpoint_written_with_lam(tmp_path, digits):
    # checkpoints written before λ had one spelling hold their config under "lam"
    t = Trial({"dataset": "digits", "lambda": 0.3, "seed": 0, "epochs": 2}, data=digits)
    run_trial(t, max_epochs=1)
    t.save(str(tmp_path / "new.pt"))
    s = ckpt.load(str(tmp_path / "new.pt"))
    s["config"]["lam"] = s["config"].pop("lambda")
    ckpt.save(s, str(tmp_path / "old.pt"))
    old = Trial.resume(str(tmp_path / "old.pt"), data=digits)
    new = Trial.resume(str(tmp_path / "new.pt"), data=digits)
    assert run_trial(old)["final_error"] == run_trial(new)["final_error"]
