"""The generic table step (di4c.cli.table) end to end on small synthetic metric
records for each layout, the published values it attaches, and its errors."""

import csv
import json
import math

import pytest

from di4c import analysis
from di4c.cli import table
from di4c.tables import LAYOUTS, paper_value

CIFAR_COLUMNS = (
    "model,steps,teacher_last,guidance,noise,nfe,num_samples,fid,fid_sd,is,is_sd,"
    "fid_clean,fid_clean_sd,fid_pgm,fid_pgm_sd,paper_fid,is_pgm,is_pgm_sd,paper_is,"
    "kid,kid_sd,precision,precision_sd,recall,recall_sd,"
    "teacher,teacher_equiv_steps,speedup,vs_teacher_n,vs_teacher_2n,paper_source"
)
IMAGENET_COLUMNS = (
    "model,steps,teacher_last,guidance,noise,nfe,num_samples,fid,fid_sd,is,is_sd,"
    "precision,precision_sd,recall,recall_sd,teacher,teacher_equiv_steps,speedup,"
    "vs_teacher_n,vs_teacher_2n,paper_fid,paper_is,paper_source"
)
OWT_COLUMNS = (
    "model,steps,teacher_last,guidance,noise,nfe,num_samples,gen_ppl,gen_ppl_sd,"
    "entropy,entropy_sd,mauve,mauve_sd,teacher,teacher_equiv_steps,speedup,"
    "vs_teacher_n,vs_teacher_2n,paper_gen_ppl,paper_entropy,paper_source"
)


def cell(setting, scale, model, n, vals, *, last=0, guidance=None, noise=None):
    r = {
        "setting": setting,
        "scale": scale,
        "cell": f"{model}_n{n}",
        "model": model,
        "steps": n,
        "teacher_last": last,
        "guidance": guidance,
        "noise": noise,
        "nfe": n,
        "num_samples": 100,
    }
    for k, (v, sd) in vals.items():
        r[k], r[f"{k}_sd"] = v, sd
    return r


def write(tmp_path, recs, name="m"):
    paths = []
    for i, r in enumerate(recs):
        p = tmp_path / f"{name}{i}.json"
        p.write_text(json.dumps(r))
        paths.append(str(p))
    return paths


def run(tmp_path, setting, scale, recs, teacher_of, rows=None, out="t.csv"):
    argv = ["--setting", setting, "--scale", scale, "--metrics", *write(tmp_path, recs)]
    if rows is not None:
        (tmp_path / "rows.json").write_text(json.dumps(rows))
        argv += ["--rows", str(tmp_path / "rows.json")]
    argv += ["--teacher-of", json.dumps(teacher_of), "--out", str(tmp_path / out)]
    table.main(argv)
    csv_path = tmp_path / out
    with open(csv_path) as f:
        reader = csv.DictReader(f)
        rows_out = list(reader)
        header = ",".join(reader.fieldnames)
    stem = csv_path.with_suffix("")
    md = stem.with_suffix(".md").read_text()
    meta = json.loads((tmp_path / (stem.name + ".meta.json")).read_text())
    assert stem.with_suffix(".png").stat().st_size > 1000
    return header, rows_out, md, meta


def cifar_records(scale="mini", pgm=False):
    """Table 1 cells; with ``pgm`` also pytorch-gan-metrics' columns (paper scale)."""
    fid = {
        "teacher": {10: (32.0, 0.5), 20: (12.0, 0.5), 40: (8.0, 0.5)},
        "student": {10: (20.0, 0.5), 20: (9.0, 0.5)},
        "released_student": {10: (21.0, 0.5)},
        "student_k1": {10: (31.0, 0.5)},
    }
    extra = lambda v, n: (  # noqa: E731
        {"fid_pgm": (v[0] + 1, 0.4), "is_pgm": (6.0 + n / 10, 0.2)} if pgm else {}
    )
    recs = [
        cell(
            "cifar10", scale, m, n, {"fid": v, "is": (5.0 + n / 10, 0.1)} | extra(v, n)
        )
        for m, pts in fid.items()
        for n, v in pts.items()
    ]
    recs.append(cell("cifar10", scale, "hybrid", 20, {"fid": (10.0, 0.5)}, last=5))
    return recs


CIFAR_TEACHER_OF = {
    "student": "teacher",
    "released_student": "teacher",
    "student_k1": "teacher",
    "hybrid": "teacher",
}


def test_cifar10_table_end_to_end(tmp_path):
    real = [cell("cifar10", "mini", "real", 0, {"fid": (1.5, None), "is": (9.0, None)})]
    recs = cifar_records()
    header, rows, md, meta = run(
        tmp_path, "cifar10", "mini", recs, CIFAR_TEACHER_OF, rows=real
    )
    assert header == CIFAR_COLUMNS == ",".join(LAYOUTS["cifar10"].columns)
    assert [(r["model"], r["steps"]) for r in rows] == [
        ("teacher", "10"),
        ("teacher", "20"),
        ("teacher", "40"),
        ("student", "10"),
        ("student", "20"),
        ("released_student", "10"),
        ("student_k1", "10"),
        ("hybrid", "20"),
        ("real", "0"),
    ]
    s10 = rows[3]
    assert (s10["fid"], s10["fid_sd"], s10["teacher"]) == ("20", "0.5", "teacher")
    assert (s10["vs_teacher_n"], s10["vs_teacher_2n"]) == ("better", "worse")
    # 20 lies between teacher 32 (N=10) and 12 (N=20): log-log interpolation
    eq = 10 * 2 ** (math.log(20 / 32) / math.log(12 / 32))
    assert float(s10["teacher_equiv_steps"]) == pytest.approx(eq, rel=1e-3)
    assert float(s10["speedup"]) == pytest.approx(eq / 10, rel=1e-3)
    s20 = rows[4]  # 9 +- 0.5 vs teacher@40 8 +- 0.5: band 1.41
    assert (s20["vs_teacher_2n"], s20["teacher_equiv_steps"]) == (
        "within noise",
        "32.71",
    )
    assert rows[7]["teacher_last"] == "5" and rows[7]["vs_teacher_n"] == "better"
    assert rows[0]["teacher"] == "" and rows[-1]["teacher_equiv_steps"] == ""
    assert all(r["paper_fid"] == "" and r["paper_source"] == "" for r in rows)  # mini
    notes = analysis.note_lines(recs + real, LAYOUTS["cifar10"], CIFAR_TEACHER_OF)
    assert "## Notes" in md and all(f"- {line}" in md for line in notes)
    assert "student N=10: FID 20.00 +- 0.50; vs teacher N=10: better beyond" in md
    assert "| real | 0 |" in md and "| paper_fid |" not in md  # empty columns dropped
    assert meta["notes"] == notes and meta["config"]["teacher_of"] == CIFAR_TEACHER_OF
    assert set(meta["inputs"]) == {f"metrics_{i}" for i in range(len(recs))} | {
        "reference_rows"
    }
    assert all(len(v["sha256"]) == 64 for v in meta["inputs"].values())


def test_paper_scale_attaches_only_transcribed_values(tmp_path):
    header, rows, md, _ = run(
        tmp_path, "cifar10", "paper", cifar_records("paper", pgm=True), CIFAR_TEACHER_OF
    )
    got = {(r["model"], r["steps"]): r for r in rows}
    assert got[("teacher", "10")]["paper_fid"] == "32.61"
    assert got[("student", "20")]["paper_fid"] == "9.77"
    assert (
        got[("released_student", "10")]["paper_fid"] == "20.64"
    )  # the paper's student
    assert got[("released_student", "10")]["paper_source"] == "Di4C paper, Table 1"
    assert (
        got[("teacher", "40")]["paper_fid"] == got[("hybrid", "20")]["paper_fid"] == ""
    )
    assert all(r["paper_is"] == "" for r in rows)  # IS was not transcribed
    assert "| paper_fid |" in md and "| 32.61 |" in md
    # the paper's value sits beside the column computed with the paper's tool
    # (pytorch-gan-metrics), torch-fidelity's and clean-fid's columns kept before it
    assert "fid_clean,fid_clean_sd,fid_pgm,fid_pgm_sd,paper_fid,is_pgm" in header
    assert "| fid_pgm | fid_pgm_sd | paper_fid | is_pgm | is_pgm_sd |" in md
    assert (got[("teacher", "10")]["fid_pgm"], got[("teacher", "10")]["fid"]) == (
        "33",
        "32",
    )
    assert "`paper_fid` / `paper_is` sit beside them" in md


def test_imagenet_table_groups_by_guidance(tmp_path):
    recs = []
    for w, (t4, t8, s4) in {1.0: (20.0, 18.0, 16.0), 3.0: (30.0, 24.0, 40.0)}.items():
        for model, n, v in (("teacher", 4, t4), ("teacher", 8, t8), ("di4c", 4, s4)):
            vals = {
                "fid": (v, 0.5),
                "is": (9.0 + n / 10, 0.1),
                "precision": (0.9, 0.01),
            }
            recs.append(cell("imagenet", "paper", model, n, vals, guidance=w))
    header, rows, md, _ = run(tmp_path, "imagenet", "paper", recs, {"di4c": "teacher"})
    assert header == IMAGENET_COLUMNS == ",".join(LAYOUTS["imagenet"].columns)
    got = {(r["model"], r["steps"], r["guidance"]): r for r in rows}
    # the README reference is at CFG 3 only
    assert got[("teacher", "8", "3")]["paper_fid"] == "6.8"
    assert got[("teacher", "8", "3")]["paper_is"] == "214"
    assert got[("teacher", "8", "1")]["paper_fid"] == ""
    assert paper_value("imagenet", "teacher", 8, "fid") is None  # no CFG: no value
    d1, d3 = got[("di4c", "4", "1")], got[("di4c", "4", "3")]
    assert (d1["teacher_equiv_steps"], d1["speedup"]) == ("> 8", "> 2")
    assert (d1["vs_teacher_2n"], d3["vs_teacher_n"]) == ("better", "worse")
    assert d3["teacher_equiv_steps"] == "<= 4"
    assert "- [CFG 1] teacher FID by N: N=4: 20.00 +- 0.50, N=8: 18.00 +- 0.50" in md
    assert (
        "- [CFG 3] di4c N=4: FID 40.00 +- 0.50; vs teacher N=4: worse beyond the "
        "noise (30.00 +- 0.50); vs teacher 2N=8: worse beyond the noise "
        "(24.00 +- 0.50); teacher steps at equal FID: <= 4 (speed-up <= 1.00x); "
        "IS vs teacher N=8: lower beyond the noise (9.40 +- 0.10 vs 9.80 +- 0.10)."
    ) in md


def test_openwebtext_table_with_a_second_round_student(tmp_path):
    ppl = {
        "teacher": {4: 40.0, 8: 30.0, 16: 25.0, 32: 22.0},
        "di4c": {4: 39.0, 8: 29.5},
        "di4c2": {4: 33.0, 8: 24.0},
        "k1": {4: 40.5},
    }
    recs = [
        cell(
            "openwebtext",
            "mini",
            m,
            n,
            {"gen_ppl": (v, 0.2), "entropy": (2.75 if m != "k1" else 2.70, 0.003)},
            noise="fp64",
        )
        for m, pts in ppl.items()
        for n, v in pts.items()
    ]
    data = [cell("openwebtext", "mini", "data", 0, {"gen_ppl": (6.0, 0.05)})]
    teacher_of = {"di4c": "teacher", "di4c2": "di4c", "k1": "teacher"}
    header, rows, md, _ = run(
        tmp_path, "openwebtext", "mini", recs, teacher_of, rows=data
    )
    assert header == OWT_COLUMNS == ",".join(LAYOUTS["openwebtext"].columns)
    got = {(r["model"], r["steps"]): r for r in rows}
    # di4c2's root teacher is the MDLM/SDTT teacher, not di4c
    assert got[("di4c2", "8")]["teacher"] == "teacher"
    assert got[("di4c2", "8")]["vs_teacher_2n"] == "better"
    eq = 4 * 2 ** (math.log(33 / 40) / math.log(30 / 40))
    assert float(got[("di4c2", "4")]["teacher_equiv_steps"]) == pytest.approx(eq, 1e-3)
    assert float(got[("di4c2", "4")]["speedup"]) == pytest.approx(eq / 4, 1e-3)
    assert "- [noise fp64] di4c2 N=8: gen PPL 24.00 +- 0.20;" in md
    assert "unigram entropy vs teacher N=16: kept within noise" in md
    assert "- [noise fp64] k1 N=4: gen PPL 40.50 +- 0.20;" in md
    assert "unigram entropy vs teacher N=8: lower beyond the noise" in md
    assert "vs k1 N=4 (K = 1 baseline): better beyond the noise (40.50 +- 0.20)" in md
    assert got[("data", "0")]["teacher"] == ""


def test_openwebtext_paper_table_has_both_noise_precisions(tmp_path, monkeypatch):
    """fp32 cells (the paper's float32 Gumbel noise) and fp64 cells side by side: each
    student is compared with the teacher of its own precision only, and a published
    value sits beside the fp32 cell alone (paper Fig. 4 ran float32 noise)."""
    # fp64 noise gives a higher gen PPL for every model (the 32-bit tail artefact)
    ppl = {"fp32": {"sdtt6": (40.0, 30.0), "sdtt6_di4c": (31.0, None)}}
    ppl["fp64"] = {"sdtt6": (60.0, 50.0), "sdtt6_di4c": (45.0, None)}
    recs = [
        cell(
            "openwebtext",
            "paper",
            m,
            n,
            {"gen_ppl": (v, 0.2), "entropy": (5.6, 0.01)},
            noise=noise,
        )
        for noise, models in ppl.items()
        for m, vals in models.items()
        for n, v in zip((8, 16), vals)
        if v is not None
    ]
    key = ("openwebtext", "sdtt6", 8, None, "gen_ppl")
    monkeypatch.setitem(table.tables.PAPER_VALUES, key, (41.0, "test value"))
    _, rows, md, _ = run(
        tmp_path, "openwebtext", "paper", recs, {"sdtt6_di4c": "sdtt6"}
    )
    got = {(r["model"], r["steps"], r["noise"]): r for r in rows}
    assert len(got) == len(rows) == 6
    assert got[("sdtt6", "8", "fp32")]["paper_gen_ppl"] == "41"
    assert got[("sdtt6", "8", "fp32")]["paper_source"] == "test value"
    assert got[("sdtt6", "8", "fp64")]["paper_gen_ppl"] == ""
    assert got[("sdtt6", "8", "fp64")]["paper_source"] == ""
    # like with like: 31 against the fp32 teacher (30 at 2N), 45 against fp64 (50)
    d32, d64 = got[("sdtt6_di4c", "8", "fp32")], got[("sdtt6_di4c", "8", "fp64")]
    assert d32["vs_teacher_n"] == d64["vs_teacher_n"] == "better"
    assert (d32["vs_teacher_2n"], d64["vs_teacher_2n"]) == ("worse", "better")
    assert "- [noise fp32] sdtt6_di4c N=8: gen PPL 31.00 +- 0.20;" in md
    assert "- [noise fp64] sdtt6_di4c N=8: gen PPL 45.00 +- 0.20;" in md
    assert "`fp32` as the paper's Fig. 4 runs" in md
    # rows: one model's fp32 cells, then its fp64 cells
    assert [(r["model"], r["noise"]) for r in rows][:4] == [
        ("sdtt6", "fp32"),
        ("sdtt6", "fp32"),
        ("sdtt6", "fp64"),
        ("sdtt6", "fp64"),
    ]


@pytest.mark.parametrize(
    "case, message",
    [
        ("unknown_setting", "table: unknown setting 'mnist'; known: cifar10, imagenet"),
        ("no_teacher", "table: no records of teacher 'teacher' (named by teacher_of)"),
        ("bad_json", "m0.json: not a readable JSON metric record"),
        ("no_steps", "m0.json: a metric record needs 'model' (string) and 'steps'"),
        ("missing_file", "nope.json: not a readable JSON metric record"),
        ("text_value", "m0.json: fid_sd must be a number or null, not 'n/a'"),
        (
            "other_setting",
            "record teacher N=10 is for setting 'imagenet', not 'cifar10'",
        ),
        ("duplicate", "table: two records for the cell ('student', 10, 0, None, None)"),
        ("bad_teacher_of", "--teacher-of is not JSON"),
        ("cycle", "table: teacher_of has a cycle: student -> teacher -> student"),
    ],
)
def test_errors_are_one_clear_line(tmp_path, capsys, case, message):
    recs = cifar_records()
    setting, teacher_of = "cifar10", json.dumps({"student": "teacher"})
    paths = write(tmp_path, recs)
    if case == "unknown_setting":
        setting = "mnist"
    elif case == "no_teacher":
        paths = write(tmp_path, [r for r in recs if r["model"] != "teacher"])
    elif case == "bad_json":
        (tmp_path / "m0.json").write_text("{not json")
    elif case == "no_steps":
        (tmp_path / "m0.json").write_text(json.dumps({"model": "teacher"}))
    elif case == "text_value":
        paths = write(tmp_path, [recs[0] | {"fid_sd": "n/a"}, *recs[1:]])
    elif case == "missing_file":
        paths = [str(tmp_path / "nope.json")]
    elif case == "other_setting":
        paths = write(tmp_path, [r | {"setting": "imagenet"} for r in recs])
    elif case == "duplicate":
        paths = write(tmp_path, [*recs, recs[3]])
    elif case == "bad_teacher_of":
        teacher_of = "{student: teacher}"
    elif case == "cycle":
        teacher_of = json.dumps({"student": "teacher", "teacher": "student"})
    argv = ["--setting", setting, "--scale", "mini", "--metrics", *paths]
    argv += ["--teacher-of", teacher_of, "--out", str(tmp_path / "t.csv")]
    with pytest.raises(SystemExit) as e:
        table.main(argv)
    assert isinstance(e.value.code, str) and "\n" not in e.value.code
    assert message in e.value.code
    assert not (tmp_path / "t.csv").exists()
