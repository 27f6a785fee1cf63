"""The one analysis module: metric directions, the noise rule, equivalent teacher
steps on hand-made curves, the 2N comparison, grouping, and the notes' wording."""

import math

import pytest

from di4c import analysis as A
from di4c.tables import LAYOUTS


def rec(model, n, metric="fid", v=None, sd=None, **kw):
    r = {"model": model, "steps": n, "teacher_last": 0, metric: v}
    if sd is not None:
        r[f"{metric}_sd"] = sd
    return r | kw


def curve(points, metric="fid", sd=None, model="teacher"):
    return [rec(model, n, metric, v, sd) for n, v in points.items()]


def test_metric_registry_directions_and_labels():
    lower = {"fid", "kid", "gen_ppl", "fid_clean", "fid_pgm"}
    higher = {"is", "is_pgm", "precision", "recall", "entropy", "mauve"}
    for name in lower | higher:
        assert A.get_metric(name).higher_is_better == (name in higher)
    assert A.get_metric("gen_ppl").label == "gen PPL"
    assert A.get_metric("entropy").label == "unigram entropy"
    with pytest.raises(ValueError, match="unknown metric 'bleu'; known: fid"):
        A.get_metric("bleu")


def test_noise_rule_boundary_and_direction():
    # band = 2 sqrt(3^2 + 4^2) = 10 exactly
    a, b = rec("s", 4, v=20.0, sd=3.0), rec("t", 4, v=10.0, sd=4.0)
    assert A.noise_band(a, b, "fid") == 10.0
    assert A.compare(a, b, "fid") == "within noise"  # |diff| == band: not beyond
    assert A.compare(b, a, "fid") == "within noise"
    a["fid"] = 20.0 + 1e-9
    assert A.compare(a, b, "fid") == "worse"
    assert A.compare(b, a, "fid") == "better"
    # higher is better: the same numbers read the other way
    hi, lo = rec("s", 4, "is", 20.001, 3.0), rec("t", 4, "is", 10.0, 4.0)
    assert A.compare(hi, lo, "is") == "better" and A.compare(lo, hi, "is") == "worse"
    # a missing (or None) sd counts as 0
    x, y = rec("s", 1, v=1.0), rec("t", 1, v=1.0 + 1e-12, sd=None)
    assert A.compare(x, y, "fid") == "better"
    d = A.difference(rec("s", 1, v=5.0, sd=0.0), rec("t", 1, v=5.0), "fid")
    assert (d.verdict, d.band, d.diff) == ("within noise", 0.0, 0.0)
    with pytest.raises(ValueError, match="no FID in the record of 't'"):
        A.compare(x, rec("t", 1, v=None), "fid")
    # another spread of the same records under the same rule (across seeds)
    s, t = rec("s", 1, v=3.0, sd=0.1, fid_seed_sd=1.0), rec("t", 1, v=1.0, sd=0.1)
    assert A.compare(s, t, "fid") == "worse"
    assert A.compare(s, t, "fid", sd_suffix="_seed_sd") == "within noise"


TEACHER = {1: 100.0, 2: 50.0, 4: 25.0, 8: 20.0}


def test_equivalent_steps_exact_points_and_log_log_interpolation():
    t = curve(TEACHER)
    for n, v in TEACHER.items():
        assert A.equivalent_steps(v, t, "fid") == A.Estimate(n)
    # log N linear in log FID: the geometric mean of 50 and 25 sits at N = 2^1.5
    e = A.equivalent_steps(math.sqrt(50 * 25), t, "fid")
    assert e.relation == "=" and e.value == pytest.approx(2**1.5)
    # a quarter of the way (in log FID) from N=4 to N=8
    x = math.exp(math.log(25) + 0.25 * (math.log(20) - math.log(25)))
    assert A.equivalent_steps(x, t, "fid").value == pytest.approx(2**2.25)
    assert e.per(2).value == pytest.approx(2**0.5)  # speed-up = equivalent / N
    assert e.text() == "2.83" and e.per(2).text(".2f") == "1.41"


def test_running_best_envelope():
    bumpy = curve({1: 100.0, 2: 50.0, 4: 60.0, 8: 25.0})
    env = A.running_best(bumpy, "fid")
    assert [(n, r["fid"]) for n, r in env] == [(1, 100), (2, 50), (4, 50), (8, 25)]
    assert env[2][1] is bumpy[1]  # N=4 is credited with the N=2 cell
    # 55 is reached between N=1 and 2 (the worse N=4 cell is never used)
    e = A.equivalent_steps(55.0, bumpy, "fid")
    assert e.value == pytest.approx(2 ** (math.log(100 / 55) / math.log(2)))
    # the flat stretch: 50 is first reached at N=2; 40 lies between N=4 (50) and 8
    assert A.equivalent_steps(50.0, bumpy, "fid").value == 2
    frac = math.log(40 / 50) / math.log(25 / 50)
    assert A.equivalent_steps(40.0, bumpy, "fid").value == pytest.approx(4 * 2**frac)
    # order of the records does not matter; reference rows (steps 0) are ignored
    shuffled = [*bumpy[::-1], rec("real", 0, v=1.0)]
    assert A.running_best(shuffled, "fid") == env


def test_out_of_curve_outcomes():
    t = curve(TEACHER, sd=1.0)
    below = A.equivalent_steps(120.0, t, "fid")
    assert below == A.Estimate(1, "<=") and below.text() == "<= 1"
    assert below.per(4).text(".2f") == "<= 0.25"
    # better than the best point (20 +- 1): beyond 2 sqrt(1 + sd^2) or not
    beyond = A.equivalent_steps(15.0, t, "fid", x_sd=1.0)  # 5 > 2.83
    assert beyond == A.Estimate(8, ">") and beyond.per(4).text() == "> 2"
    near = A.equivalent_steps(18.0, t, "fid", x_sd=1.0)  # 2 <= 2.83
    assert near == A.Estimate(8, "~") and near.text() == "~ 8"
    assert A.equivalent_steps(18.0, t, "fid").relation == "~"  # own sd 0, band 2
    assert A.equivalent_steps(17.9, t, "fid").relation == ">"
    with pytest.raises(ValueError, match="no teacher cells with FID"):
        A.equivalent_steps(1.0, [rec("teacher", 0, v=1.0)], "fid")


def test_higher_is_better_metric():
    t = curve({1: 2.0, 2: 4.0, 4: 8.0, 8: 6.0}, metric="is")
    e = A.equivalent_steps(math.sqrt(32), t, "is")
    assert e.value == pytest.approx(2**1.5)
    assert A.equivalent_steps(1.5, t, "is") == A.Estimate(1, "<=")
    # better than anything up to N=8 (its best, 8.0, is already reached at N=4)
    assert A.equivalent_steps(9.0, t, "is") == A.Estimate(8, ">")
    assert A.equivalent_steps(8.0, t, "is") == A.Estimate(4)
    # a value that is not positive: linear in the metric instead of its log
    p = curve({1: 0.0, 2: 0.5}, metric="precision")
    assert A.equivalent_steps(0.25, p, "precision").value == pytest.approx(2**0.5)


def test_teacher_at_n_and_2n():
    t = curve(TEACHER, sd=1.0)
    s = rec("student", 4, v=21.0, sd=1.0)
    assert A.vs_teacher(s, t, "fid").verdict == "better"  # 21 vs 25, band 2.83
    d = A.vs_teacher(s, t, "fid", factor=2)
    assert (d.verdict, d.b) == ("within noise", 20.0)
    assert A.vs_teacher(rec("student", 8, v=1.0), t, "fid", factor=2) is None
    assert A.vs_teacher(rec("student", 3, v=1.0), t, "fid") is None


def test_root_teacher_and_groups():
    teacher_of = {"di4c2": "di4c", "di4c": "teacher", "k1": "teacher"}
    assert A.root_teacher("di4c2", teacher_of) == "teacher"
    assert A.root_teacher("teacher", teacher_of) == "teacher"
    with pytest.raises(ValueError, match="cycle: a -> b -> a"):
        A.root_teacher("a", {"a": "b", "b": "a"})
    recs = [
        rec("teacher", 8, guidance=3.0),
        rec("teacher", 4, guidance=1),
        rec("di4c", 4, guidance=3),
        rec("teacher", 4, guidance=None),
        rec("data", 0),
    ]
    groups = A.group_records(recs, ("guidance",))
    assert list(groups) == [(None,), (1,), (3.0,)]  # None first, then by weight
    assert [r["model"] for r in groups[(3.0,)]] == ["teacher", "di4c"]  # 3 == 3.0
    assert A.group_label((3.0,), ("guidance",)) == "CFG 3"
    assert A.group_label(("fp64",), ("noise",)) == "noise fp64"
    assert A.group_label((), ()) == ""


def _imagenet_records():
    """Two CFG weights; the student is compared only within its weight."""
    out = []
    for w, (t4, t8, s4) in {1.0: (20.0, 18.0, 17.5), 3.0: (30.0, 24.0, 40.0)}.items():
        for model, n, v, is_ in (
            ("teacher", 4, t4, 9.0),
            ("teacher", 8, t8, 9.5),
            ("di4c", 4, s4, 9.45),
            ("k1", 4, s4 + 5, 9.0),
        ):
            r = rec(model, n, v=v, sd=0.5, guidance=w)
            out.append(r | {"is": is_, "is_sd": 0.1})
    return out


def test_rows_are_grouped_by_guidance():
    layout = LAYOUTS["imagenet"]
    rows = A.analyse_rows(
        _imagenet_records(), layout, {"di4c": "teacher", "k1": "teacher"}
    )
    got = {(r.record["model"], r.group): r for r in rows}
    cfg1, cfg3 = got[("di4c", (1.0,))], got[("di4c", (3.0,))]
    assert cfg1.double_n.verdict == "within noise" and cfg1.double_n.b == 18.0
    assert cfg1.equivalent.relation == "~" and cfg1.speedup.text() == "~ 2"
    assert cfg3.same_n.verdict == "worse" and cfg3.equivalent.text() == "<= 4"
    assert cfg3.secondary.verdict == "within noise" and cfg3.secondary_at == 8
    assert cfg1.baseline.verdict == "better"
    assert got[("k1", (1.0,))].baseline is None  # the baseline is not its own


def test_note_lines_for_a_small_table():
    layout = LAYOUTS["cifar10"]
    recs = [
        *(
            rec("teacher", n, v=v, sd=0.5) | {"is": i, "is_sd": 0.05}
            for (n, v), i in zip(TEACHER.items(), (2.0, 4.0, 6.0, 6.1))
        ),
        rec("student", 2, v=30.0, sd=0.5) | {"is": 5.9, "is_sd": 0.05},
        rec("student", 4, v=18.0, sd=0.5) | {"is": 5.0, "is_sd": 0.05},
        rec("student_k1", 2, v=49.0, sd=0.5) | {"is": 4.0, "is_sd": 0.05},
        rec("hybrid", 4, v=22.0, sd=0.5, teacher_last=1),
        rec("orphan", 2, v=22.0),  # no teacher named: listed in the table only
        rec("real", 0, v=2.0),
    ]
    teacher_of = {"student": "teacher", "student_k1": "teacher", "hybrid": "teacher"}
    lines = A.note_lines(recs, layout, teacher_of)
    assert lines[0] == A.NOISE_RULE
    assert lines[1:] == [
        "teacher FID by N: N=1: 100.00 +- 0.50, N=2: 50.00 +- 0.50, "
        "N=4: 25.00 +- 0.50, N=8: 20.00 +- 0.50; from N=4 to N=8 it still improves "
        "beyond the noise (largest N better beyond the noise than the previous one: N=8).",
        "student N=2: FID 30.00 +- 0.50; vs teacher N=2: better beyond the noise "
        "(50.00 +- 0.50); vs teacher 2N=4: worse beyond the noise (25.00 +- 0.50); "
        "teacher steps at equal FID: 3.33 (speed-up 1.67x); IS vs teacher N=4: "
        "kept within noise (5.900 +- 0.050 vs 6.000 +- 0.050); vs student_k1 N=2 "
        "(K = 1 baseline): better beyond the noise (49.00 +- 0.50).",
        "student N=4: FID 18.00 +- 0.50; vs teacher N=4: better beyond the noise "
        "(25.00 +- 0.50); vs teacher 2N=8: better beyond the noise (20.00 +- 0.50); "
        "teacher steps at equal FID: > 8 (speed-up > 2.00x); IS vs teacher N=8: "
        "lower beyond the noise (5.000 +- 0.050 vs 6.100 +- 0.050).",
        "student_k1 N=2: FID 49.00 +- 0.50; vs teacher N=2: within noise "
        "(50.00 +- 0.50); vs teacher 2N=4: worse beyond the noise (25.00 +- 0.50); "
        "teacher steps at equal FID: 2.04 (speed-up 1.02x); IS vs teacher N=4: "
        "lower beyond the noise (4.000 +- 0.050 vs 6.000 +- 0.050).",
        "hybrid N=4 (L=1): FID 22.00 +- 0.50; vs teacher N=4: better beyond the "
        "noise (25.00 +- 0.50); vs teacher 2N=8: worse beyond the noise "
        "(20.00 +- 0.50); teacher steps at equal FID: 5.95 (speed-up 1.49x).",
    ]


def test_note_lines_say_when_a_group_has_no_teacher():
    layout = LAYOUTS["openwebtext"]
    recs = [
        rec("teacher", n, "gen_ppl", v, 0.1, noise="fp64")
        for n, v in {1: 100.0, 2: 40.0}.items()
    ] + [rec("di4c", 1, "gen_ppl", 40.0, 0.1, noise="fp32")]
    lines = A.note_lines(recs, layout, {"di4c": "teacher"})
    assert lines[1] == (
        "[noise fp32] di4c N=1: no teacher cell with gen PPL in this group, "
        "or no value; not compared."
    )
    assert lines[2].startswith("[noise fp64] teacher gen PPL by N: N=1: 100.00 +- 0.10")
    assert "no longer" not in lines[2] and "N=2 it still improves" in lines[2]
