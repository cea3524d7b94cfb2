"""`mimetic report PATH... --out report.html`: one self-contained HTML page (images embedded as
base64 data URIs, inline CSS, no scripts, no external assets) that reads offline.

Each PATH may be
- a training run (holds train.json or config.json): its config, learning curves from
  metrics.jsonl, the evaluation in RUN/eval.json if there is one, the shift analysis in
  RUN/shift/shift.json if `mimetic shift` wrote one, and a summary of the dataset it was trained on;
- a `mimetic compare` folder (holds compare.json): its table, bar chart and learning curves;
- a dataset (holds meta/info.json): its `inspect` summary and plots (with a frame strip per camera);
- a folder of rollout videos written by `mimetic eval --video DIR` (holds videos.json);
- an evaluation JSON written by `mimetic eval --json FILE` (a suite's: one row per task and the mean).

Rollout videos (a run's RUN/video*/ folders holding videos.json, or such folders given as PATH) are
embedded as `<video>` elements with the MP4 as a data URI (AV1 and H.264 play in Chromium and
Firefox); a video in another codec is embedded as an animated WebP preview made with Pillow.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import tempfile
from pathlib import Path
from typing import Sequence

from mimetic.data.io import atomic_write_bytes, read_json
from mimetic.errors import MimeticError

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{border-bottom:2px solid #345}h2{margin-top:2em;border-bottom:1px solid #bbb}h3{margin-top:1.4em}
table{border-collapse:collapse;margin:.6em 0;font-size:14px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#eef}td.num{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%;display:block;margin:.5em 0}
code{background:#f4f4f4;padding:0 3px}.note{color:#666;font-size:13px}
figure{display:inline-block;margin:.4em .8em .4em 0;vertical-align:top}figcaption{font-size:13px;color:#444}
video,img.preview{width:256px;max-width:100%;image-rendering:pixelated;display:block;background:#000}
"""
BROWSER_CODECS = ("av1", "h264")  # codecs Chromium and Firefox play in MP4
MAX_VIDEO_BYTES = 20 * 2**20  # a larger video file is linked by name, not embedded
MAX_VIDEOS = 8  # videos embedded per folder


def _e(x) -> str:
    return html.escape(str(x))


def _img(path: str | Path | None, alt: str, base: Path | None = None) -> str:
    """An <img> with the PNG embedded as a data URI; a path that moved is looked up by name in `base`
    ('' if the file is missing)."""
    if path and not Path(path).is_file() and base is not None:
        path = base / Path(path).name
    if not path or not Path(path).is_file():
        return ""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def _table(header: Sequence[str], rows: Sequence[Sequence], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="num">{_e(_fmt(c))}</td>' if isinstance(c, (int, float)) else
                                    f"<td>{_e(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _kv(d: dict) -> str:
    return _table(["field", "value"], [(k, v) for k, v in d.items()], "kv")


def _ci(ci) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


# ------------------------------------------------------------------------------ sections
def dataset_section(root: str | Path, tmp: Path) -> str:
    from mimetic.analysis.inspect import inspect_dataset

    s = inspect_dataset(root, tmp / f"ds{abs(hash(str(root)))}")
    L = s["length"] or {"min": 0, "mean": 0.0, "max": 0}
    parts = [f"<h3>Dataset <code>{_e(s['dataset'])}</code></h3>",
             _table(["env", "episodes", "frames", "obs dim", "action dim", "length min", "length mean", "length max",
                     "success rate", "mean return"],
                    [(s["env"], s["episodes"], s["frames"], s["obs_dim"] if s["obs_dim"] is not None else "none",
                      s["act_dim"], L["min"], L["mean"], L["max"], s["success_rate"], s["mean_return"])], "dataset")]
    if s.get("cameras"):
        parts.append(_table(["camera", "key", "shape", "storage"],
                            [(c["camera"], c["key"], "x".join(map(str, c["shape"])), c["storage"]) for c in s["cameras"]],
                            "cameras"))
    for key in ("observation", "action"):
        st = s[key]
        if st is None:
            continue
        parts.append(f"<p>{key} statistics per dimension</p>")
        parts.append(_table(["dim", "mean", "std", "min", "max"],
                            [(j, st["mean"][j], st["std"][j], st["min"][j], st["max"][j]) for j in range(len(st["mean"]))],
                            "stats"))
    for k, p in s["plots"].items():
        if k.startswith("frames_"):
            from mimetic.analysis.inspect import STRIP_EPISODES, STRIP_FRAMES

            parts.append(f'<p class="note">camera {_e(k[len("frames_"):])}: {STRIP_FRAMES} evenly spaced frames of '
                         f"each of the first {STRIP_EPISODES} episodes (one row per episode)</p>")
        parts.append(_img(p, k))
    return "\n".join(parts)


def _media(path: Path, codec: str, alt: str) -> str:
    """The video at `path` embedded: a <video> with the MP4 as a data URI if browsers play its codec, else an
    animated WebP preview of its frames."""
    if codec in BROWSER_CODECS:
        data = base64.b64encode(path.read_bytes()).decode()
        return (f'<video controls autoplay loop muted playsinline preload="auto" title="{_e(alt)}" '
                f'src="data:video/mp4;base64,{data}"></video>')
    return _preview(path, alt)


def _preview(path: Path, alt: str, fps: float = 10.0) -> str:
    """An animated WebP (Pillow) of the video at `path`, as an <img>."""
    import io

    from PIL import Image

    from mimetic.data.video import decode_video, video_info

    frames = decode_video(path)
    fps = float(video_info(path)["fps"] or fps)
    buf = io.BytesIO()
    images = [Image.fromarray(f) for f in frames]
    images[0].save(buf, format="WEBP", save_all=True, append_images=images[1:], duration=max(1, round(1000 / fps)),
                   loop=0, lossless=True)
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img class="preview" alt="{_e(alt)}" src="data:image/webp;base64,{data}">'


def videos_section(folder: Path, heading: str = "h3") -> str:
    """The rollout videos `mimetic eval --video` wrote to `folder` (listed in its videos.json)."""
    from mimetic.videos import MANIFEST

    m = read_json(folder / MANIFEST, "rollout videos")
    eps = m.get("episodes") or []
    cams = ", ".join(m.get("cameras") or []) + (" (added for the videos)" if m.get("camera_added") else "")
    parts = [f"<{heading}>Rollout videos <code>{_e(folder)}</code></{heading}>",
             f'<p class="note">{_e(m.get("env", ""))}, camera {_e(cams)}, {_e(m.get("fps", ""))} fps; '
             f"each video shows an episode from its first observation to its final one.</p>"]
    figures, total = [], 0
    for e in eps[:MAX_VIDEOS]:
        path = folder / str(e.get("file", ""))
        outcome = "success" if e.get("success") else "failure"
        caption = f"seed {e.get('seed')}: {outcome}, {e.get('length')} steps, return {float(e.get('return', 0.0)):.2f}"
        if e.get("same_as_evaluation") is False:
            caption += " (differs from the evaluated episode)"
        if not path.is_file():
            media = f'<p class="note">{_e(path.name)}: missing</p>'
        elif total + path.stat().st_size > MAX_VIDEO_BYTES:
            media = f'<p class="note">{_e(path.name)}: not embedded (over {MAX_VIDEO_BYTES >> 20} MB of video)</p>'
        else:
            total += path.stat().st_size
            media = _media(path, str(m.get("codec", "")), caption)
        figures.append(f"<figure>{media}<figcaption>{_e(caption)}</figcaption></figure>")
    if len(eps) > MAX_VIDEOS:
        figures.append(f'<p class="note">{len(eps) - MAX_VIDEOS} more videos in {_e(folder)}</p>')
    return "\n".join(parts + ["<div>" + "".join(figures) + "</div>"])


def _video_folders(run: Path) -> list[Path]:
    """A run's folders of rollout videos: RUN/video*/ holding videos.json."""
    from mimetic.videos import MANIFEST

    return sorted(d for d in run.glob("video*") if (d / MANIFEST).is_file())


def eval_table(res: dict) -> str:
    from mimetic.evaluate import describe_return

    if "tasks" in res:  # a suite (SuiteResult.to_json()): one row per task, then the mean
        rows = [(name, r.get("instruction", ""), r["success_rate"], _ci(r["ci95"]), r["episodes"])
                for name, r in res["tasks"].items()]
        rows.append(("mean over tasks", "", res["success_rate"], _ci(res["ci95"]) + " (Wilson, pooled episodes)",
                     res["episodes"] * len(res["tasks"])))
        return (f"<p>{_e(res.get('policy', ''))} on the suite <code>{_e(res.get('env', ''))}</code>, "
                f"{res['episodes']} episodes per task from seed {_e(res.get('seed', ''))}</p>"
                + _table(["task", "instruction", "success", "95% CI", "episodes"], rows, "eval"))
    comparable = res.get("return_comparable", True)
    table = _table(["policy", "env", "success", "95% CI", "mean return", "mean length", "episodes", "first seed"],
                   [(res.get("policy", ""), res.get("env", ""), res["success_rate"], _ci(res["ci95"]),
                     res["mean_return"] if comparable else "n/a", res.get("mean_length", ""), res["episodes"],
                     res.get("seed", ""))], "eval")
    note = describe_return(res["mean_return"], comparable, res.get("return_note", ""))
    return table + f'<p class="note">{_e(note)}</p>'


def shift_section(r: dict, base: Path | None = None) -> str:
    ref = r["reference"] if r.get("reference") and "state" in r["reference"] else None
    rows = []
    for part in ("state", "action"):
        for key in ("kl_expert_learner_sum", "kl_learner_expert_sum", "learner_in_expert", "expert_in_learner", "pca_overlap"):
            rows.append((part, key, r[part][key], ref[part][key] if ref else "–"))
    ln = r["learner"]
    parts = [f"<h3>Distribution shift ({r['episodes']} learner episodes from seed {r['seed']})</h3>",
             f"<p>learner success {ln['success_rate']:.3f} {_ci(ln['ci95'])}; the reference column holds the same "
             "measures for fresh expert rollouts on the same seeds (what finite samples alone give).</p>",
             _table(["part", "measure", "learner", "expert reference"], rows, "shift")]
    rw = r.get("reward") or {}
    if "skipped" in rw:
        parts.append(f'<p class="note">reward recovery: skipped ({_e(rw["skipped"])})</p>')
    elif rw:
        parts.append(_kv({k: v for k, v in rw.items() if k != "plot"}))
    parts += [_img(p, k, base) for k, p in r.get("plots", {}).items()]
    return "\n".join(parts)


def run_section(run: Path, tmp: Path, seen_datasets: set) -> str:
    from mimetic.algos.run_dir import read_metrics
    from mimetic.analysis import plots

    info = read_json(run / "train.json", "training run") if (run / "train.json").exists() else {}
    parts = [f"<h2>Run <code>{_e(run)}</code></h2>"]
    if info:
        parts.append(_kv({k: info[k] for k in ("method", "policy", "env", "env_options", "dataset", "parameters") if k in info}))
        parts.append("<h3>Config</h3>" + _kv(info.get("config") or info.get("train") or {}))
    elif (run / "config.json").exists():
        parts.append("<h3>Policy config</h3>" + _kv(read_json(run / "config.json", "policy config")))
    rows = read_metrics(run)
    if rows:
        png = plots.curves(tmp / f"curves{abs(hash(str(run)))}.png", {run.name: [rows]},
                           ("train_loss", "val_loss", "val_success"), f"{run.name}: learning curves")
        parts.append("<h3>Training</h3>" + _img(png, "learning curves"))
        last = rows[-1]
        parts.append("<p>last logged step</p>" + _kv(last))
    if (run / "eval.json").exists():
        parts.append("<h3>Evaluation</h3>" + eval_table(read_json(run / "eval.json", "evaluation")))
    for folder in _video_folders(run):
        parts.append(videos_section(folder))
    for cand in (run / "shift" / "shift.json", run / "shift.json"):
        if cand.exists():
            parts.append(shift_section(read_json(cand, "shift analysis"), cand.parent))
            break
    ds = info.get("dataset")
    if ds and (Path(ds) / "meta/info.json").exists() and ds not in seen_datasets:
        seen_datasets.add(ds)
        parts.append(dataset_section(ds, tmp))
    elif ds in seen_datasets:
        parts.append(f'<p class="note">dataset <code>{_e(ds)}</code>: summarized above</p>')
    return "\n".join(parts)


def compare_section(folder: Path) -> str:
    from mimetic.analysis.compare import (METHOD_HEADER, PAIRED_HEADER, PAIRED_NOTE, method_rows, paired_rows,
                                          return_line, task_header, task_rows)

    r = read_json(folder / "compare.json", "comparison")
    for x in r["results"]:  # a compare.json written before the t-interval over seeds
        x.setdefault("ci95_seeds", None)
    paired = [f"<h3>Paired comparisons</h3><p class=\"note\">{_e(PAIRED_NOTE)}</p>",
              _table(PAIRED_HEADER, paired_rows(r), "paired")] if r.get("paired") else []
    tasks = [f"<h3>Per task</h3><p class=\"note\">success, mean over training seeds; the methods' success above is "
             "the mean over tasks</p>", _table(task_header(r), task_rows(r), "tasks")] if task_rows(r) else []
    return "\n".join([
        f"<h2>Comparison on <code>{_e(r['env'])}</code></h2>",
        f"<p>dataset <code>{_e(r['dataset'])}</code> ({r['dataset_episodes']} episodes); training seeds {r['seeds']}; "
        f"{r['episodes']} evaluation episodes per run from seed {r['eval_seed']} (the same for every run).</p>",
        _table(METHOD_HEADER, method_rows(r), "compare"),
        f'<p class="note">{_e(return_line(r))}</p>',
        *tasks,
        *paired,
        _img(r["plots"].get("success"), "success rates", folder),
        _img(r["plots"].get("curves"), "learning curves", folder),
    ])


def render_report(paths: Sequence[str | Path], out: str | Path, title: str = "mimetic report") -> Path:
    """Write the report for `paths` (runs, compare folders, datasets, video folders) to the HTML file `out`."""
    if not paths:
        raise MimeticError("report: give at least one run, compare folder, dataset or folder of rollout videos")
    sections = []
    seen: set = set()
    with tempfile.TemporaryDirectory(prefix="mimetic-report-") as t:
        tmp = Path(t)
        for p in map(Path, paths):
            if (p / "compare.json").exists():
                sections.append(compare_section(p))
            elif (p / "train.json").exists() or (p / "config.json").exists():
                sections.append(run_section(p, tmp, seen))
            elif p.is_file() and p.suffix == ".json":  # an evaluation written by `mimetic eval --json`
                res = read_json(p, "evaluation")
                if "success_rate" not in res:
                    raise MimeticError(f"report: {p} is not an evaluation written by `mimetic eval --json`")
                sections.append(f"<h2>Evaluation <code>{_e(p)}</code></h2>" + eval_table(res))
            elif (p / "videos.json").exists():
                sections.append(videos_section(p, "h2"))
            elif (p / "meta/info.json").exists():
                if str(p.resolve()) not in seen:
                    seen.add(str(p.resolve()))
                    sections.append("<h2>Dataset</h2>" + dataset_section(p, tmp))
            else:
                raise MimeticError(f"report: {p} is not a training run (train.json), a compare folder (compare.json), "
                                   "a dataset (meta/info.json), a folder of rollout videos (videos.json) or an "
                                   "evaluation JSON (mimetic eval --json)")
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
                f"<style>{CSS}</style></head><body>\n<h1>{_e(title)}</h1>\n<p class=\"note\">generated {stamp}</p>\n"
                + "\n".join(sections) + "\n</body></html>\n")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, page.encode())
    return out
