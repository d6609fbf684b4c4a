"""VQA: scoring definitions (clinforge and LLaVA-Med legacy), SLAKE/PathVQA readers, the vqa_rad task on the real
VQA-RAD images, image contamination of the published split, and images through the hf and openai backends."""

from __future__ import annotations

import base64
import json
import pickle
import threading
import time
from pathlib import Path

import fastapi
import pytest
from PIL import Image

from clinforge.core.errors import ClinforgeError, DataError
from clinforge.eval.metrics.vqa_scoring import (
    legacy_normalize_word,
    llava_med_legacy,
    normalize_answer,
    score_closed,
    score_open,
    token_prf,
)
from clinforge.models.backends.base import GenerationRequest


# ------------------------------------------------------------------ scoring
def test_clinforge_closed_scoring_counts_unparsable():
    vocab = {"yes", "no", "left", "right", "normal"}
    assert score_closed("Yes.", "yes", vocab)["correct"]
    assert score_closed("No, the heart size is normal", "no", vocab)["parsed"] == "no"
    assert score_closed("Left", "left", vocab)["correct"]  # the bare answer LLaVA-Med's script scores 0
    normal = score_closed("normal", "no", vocab)  # LLaVA-Med counts this as "no"
    assert normal["parsed"] == "normal" and not normal["correct"]
    unknown = score_closed("Unknown", "no", vocab)
    assert unknown == {"parsed": None, "parse_status": "unparsed", "correct": False}
    assert score_closed("", "yes", vocab)["parse_status"] == "unparsed"


def test_clinforge_open_scoring():
    assert normalize_answer("The  Right-sided, 2.5 cm  effusion.") == "right sided 2.5 cm effusion"
    r = score_open("right upper lobe of the lung", "Right upper lobe")
    assert not r["exact"] and r["recall"] == 1.0 and r["precision"] == pytest.approx(3 / 5)
    assert r["f1"] == pytest.approx(2 * 0.6 / 1.6) and (r["pred_len"], r["gold_len"]) == (5, 3)
    assert score_open("Right upper lobe.", "right upper lobe")["exact"]
    assert token_prf("", "left") == (0.0, 0.0, 0.0)
    # multiset overlap: a repeated word counts once per occurrence in the gold answer
    p, rec, _ = token_prf("mass mass mass", "mass")
    assert (p, rec) == (pytest.approx(1 / 3), 1.0)


def test_llava_med_legacy_quirks():
    assert llava_med_legacy("normal", "no", "CLOSED")["closed_hit"] == 1  # "no" inside "normal"
    assert llava_med_legacy("Unknown", "no", "CLOSED")["closed_hit"] == 1  # "no" inside "unknown"
    assert llava_med_legacy("left", "left", "CLOSED")["closed_hit"] == 0  # right answer, neither yes nor no
    assert llava_med_legacy("left, no doubt", "left", "CLOSED")["closed_hit"] == 1
    assert llava_med_legacy("yes", "no", "CLOSED")["closed_hit"] is None  # wrong yes/no: out of the denominator
    assert llava_med_legacy("maybe", "yes", "CLOSED")["closed_hit"] == 0
    # open: "exact" is gold types present / predicted words, so a partial answer scores 1.0
    legacy = llava_med_legacy("left", "left lung", "OPEN")
    assert legacy["exact"] == 1.0 and legacy["recall"] == 0.5
    assert legacy_normalize_word("two nodules; none.") == "2 nodules 0"
    assert legacy_normalize_word("3.4 cm") == "3.4 cm"


# ------------------------------------------------------------------ readers
def _jpg(path: Path, shade: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 24), (shade, shade, shade)).save(path)


def test_slake_reader(tmp_path):
    from clinforge.data.load import load_records

    _jpg(tmp_path / "imgs" / "xmlab1" / "source.jpg")
    rows = [{"qid": 1, "img_id": 1, "img_name": "xmlab1/source.jpg", "question": "Is the lung healthy?",
             "answer": "No", "q_lang": "en", "answer_type": "CLOSED", "content_type": "Abnormality",
             "location": "Lung", "modality": "CT", "base_type": "vqa"},
            {"qid": 2, "img_id": 1, "img_name": "xmlab1/source.jpg", "question": "肺部健康吗?", "answer": "否",
             "q_lang": "zh", "answer_type": "CLOSED", "location": "Lung", "modality": "CT"},
            {"qid": 3, "img_id": 9, "img_name": "xmlab9/source.jpg", "question": "Which organ?", "answer": "Liver",
             "q_lang": "en", "answer_type": "OPEN", "location": "Abdomen", "modality": "CT"}]
    (tmp_path / "test.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "train.json").write_text(json.dumps(rows[:1]), encoding="utf-8")
    recs = load_records(tmp_path, "slake", split="test", on_error="skip")
    assert [r.id for r in recs] == ["slake-test-1"]
    assert recs[0].meta["image_organ"] == "Lung" and recs[0].meta["question_type"] == "Abnormality"
    with pytest.raises(DataError) as err:
        load_records(tmp_path, "slake", split="test")
    assert "xmlab9" in str(err.value) and "img_name" in str(err.value)


def test_pathvqa_reader_and_unsafe_pickle(tmp_path):
    from clinforge.data.load import load_records

    root = tmp_path / "split"
    _jpg(root / "images" / "test" / "test_0001.jpg")
    qas = [{"image": "test_0001", "question": "Is this necrosis?", "answer": "yes"},
           {"image": "test_0001", "question": "What is present?", "answer": "granuloma"}]
    (root / "qas" / "test").mkdir(parents=True)
    (root / "qas" / "test" / "test_qa.pkl").write_bytes(pickle.dumps(qas))
    recs = load_records(root, "pathvqa", split="test")
    assert [r.meta["answer_type"] for r in recs] == ["CLOSED", "OPEN"] and recs[1].answer == "granuloma"
    evil = tmp_path / "evil_qa.pkl"
    evil.write_bytes(pickle.dumps([{"image": Path("x")}]))  # any class reference is refused
    with pytest.raises(DataError, match="refusing"):
        load_records(evil, "pathvqa")


# ------------------------------------------------------------------ real VQA-RAD
def test_vqa_rad_task_and_published_split(data_root):
    from clinforge.eval.tasks import get_task

    task = get_task("vqa_rad")
    records = task.records(data_root)
    assert len(records) == 450 and all(Path(r.images[0]).is_file() for r in records)
    vocab = task.vocabulary(data_root)
    assert {"yes", "no"} <= vocab and len(vocab) > 20  # closed answers include left/right, modalities...
    plan = task.build(records[0], "generate", [])
    assert plan["requests"][0].images == records[0].images
    assert plan["prompt"].endswith("Answer with a single word or phrase.")
    from clinforge.data.load import load_records

    assert len(load_records(data_root / "vqa-rad", "vqa_rad", split="train")) == 1798


def test_vqa_rad_image_contamination_reported(data_root):
    from clinforge.data.images.image_contamination import image_contamination
    from clinforge.data.load import load_records

    train = load_records(data_root / "vqa-rad", "vqa_rad", split="train")
    test = load_records(data_root / "vqa-rad", "vqa_rad", split="test")
    report = image_contamination([r.images[0] for r in train], [r.images[0] for r in test], published=True)
    # measured: every one of the 240 distinct test images is also a train image (byte-identical files)
    assert report["test_images"] == 240 and report["test_images_with_train_duplicate"] == 240
    assert report["exact"] == 240 and report["action"] == "reported"
    assert len(test) == 450  # reported, never dropped


def test_near_duplicate_survives_reencoding(tmp_path, data_root):
    from clinforge.data.images.image_contamination import image_contamination

    src = data_root / "vqa-rad" / "images" / "synpic40596.jpg"
    img = Image.open(src).convert("RGB")
    img.resize((img.width * 3 // 4, img.height * 3 // 4)).save(tmp_path / "smaller.png")
    other = sorted((data_root / "vqa-rad" / "images").glob("*.jpg"))[:20]
    report = image_contamination([src, *[o for o in other if o.name != src.name]], [tmp_path / "smaller.png"])
    assert report["near"] == 1 and report["pairs"][0]["train"].endswith("synpic40596.jpg")
    assert report["action"] == "move or drop"


def test_corrupt_image_names_file_and_record(tmp_path):
    from clinforge.data.images.image_files import load_image

    bad = tmp_path / "broken.jpg"
    good = tmp_path / "ok.jpg"
    _jpg(good)
    bad.write_bytes(good.read_bytes()[:60])  # truncated JPEG
    with pytest.raises(DataError) as err:
        load_image(bad, record="vqa_rad-test-9")
    assert str(bad) in str(err.value) and "vqa_rad-test-9" in str(err.value)


# ------------------------------------------------------------------ backends with images
@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory) -> Path:
    from _tinyllava import build_tiny_llava
    from conftest import build_once

    return build_once(tmp_path_factory, "tiny-llava-clip", build_tiny_llava)


def test_hf_backend_takes_images_batched_equals_single(tiny_llava, data_root):
    from clinforge.models.backends import load_backend
    from clinforge.models.backends.hf_vision import HFVisionBackend

    images = sorted((data_root / "vqa-rad" / "images").glob("*.jpg"))[:3]
    reqs = [GenerationRequest(prompt=f"Question {i}: is there a mass?", images=[str(p)], max_new_tokens=6)
            for i, p in enumerate(images)]
    reqs.append(GenerationRequest(prompt="no image here", max_new_tokens=4))
    batched = load_backend(f"hf:{tiny_llava}", batch_size=4)
    assert isinstance(batched, HFVisionBackend)
    single = load_backend(f"hf:{tiny_llava}", batch_size=1)
    out = batched.generate(reqs)
    assert out == single.generate(reqs) and all(isinstance(o, str) for o in out)
    # the image changes what the model computes: the same prompt with another image gives other logits
    import torch

    proc, model = batched.processor, batched.model
    inputs = [proc(text=["<image>\nq"], images=[Image.open(p).convert("RGB")], return_tensors="pt") for p in images[:2]]
    with torch.no_grad():
        a, b = (model(**x).logits[0, -1] for x in inputs)
    assert not torch.allclose(a, b)
    with pytest.raises(ClinforgeError, match="2 <image> marker"):
        batched.generate([GenerationRequest(prompt="<image><image> q", images=[str(images[0])])])
    with pytest.raises(DataError, match="missing.jpg"):
        batched.generate([GenerationRequest(prompt="q", images=[str(data_root / "missing.jpg")])])


def test_text_backend_refuses_images(tiny_llama):
    from clinforge.models.backends import load_backend

    be = load_backend(f"hf:{tiny_llama}")
    with pytest.raises(ClinforgeError, match="text-only"):
        be.generate([GenerationRequest(prompt="q", images=["x.png"])])


def test_eval_vqa_rad_with_both_scorings(tiny_llava, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "eval"
    proc = subprocess.run([sys.executable, "-m", "clinforge", "eval", "--model", f"hf:{tiny_llava}", "--tasks",
                           "vqa_rad,vqa_rad_llava_med_legacy", "--limit", "16", "--out", str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    ours, legacy = summary["tasks"]["vqa_rad"], summary["tasks"]["vqa_rad_llava_med_legacy"]
    assert ours["n"] == legacy["n"] == 16 and ours["n_closed"] + ours["n_open"] == 16
    assert ours["scoring"] == "clinforge" and legacy["scoring"].startswith("llava-med-legacy")
    assert len(ours["acc_ci"]) == 2 and ours["by_organ"] and ours["by_question_type"]
    rows = [json.loads(line) for line in (out / "items" / "vqa_rad.jsonl").read_text().splitlines()]
    closed = [r for r in rows if r["answer_type"] == "CLOSED"]
    assert ours["closed_unparsed"] == sum(r["parse_status"] == "unparsed" for r in closed)
    legacy_rows = [json.loads(x) for x in (out / "items" / "vqa_rad_llava_med_legacy.jsonl").read_text().splitlines()]
    # the legacy twin scored the very same generations (the request cache answered it)
    assert {r["id"]: r["output"] for r in legacy_rows} == {r["id"]: r["output"] for r in rows}


# ------------------------------------------------------------------ openai backend: a real loopback server
class _Recorder:
    def __init__(self) -> None:
        self.bodies: list[dict] = []
        app = fastapi.FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: fastapi.Request) -> dict:  # module-level name: FastAPI resolves the annotation
            body = await request.json()
            self.bodies.append(body)
            return {"choices": [{"index": 0, "message": {"role": "assistant", "content": "yes"}}]}

        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def test_openai_backend_sends_image_url_parts(data_root, tmp_path):
    from clinforge.models.backends import load_backend

    image = data_root / "vqa-rad" / "images" / "synpic40596.jpg"
    png = tmp_path / "x.bmp"
    Image.new("RGB", (5, 4), (10, 20, 30)).save(png)
    recorder = _Recorder()
    with recorder as url:
        be = load_backend(f"openai:{url}#tiny-vlm", max_retries=0)
        out = be.generate([GenerationRequest(prompt="Is this a hepatic mass?", images=[str(image)]),
                           GenerationRequest(messages=[{"role": "system", "content": "Be brief."},
                                                       {"role": "user", "content": "Describe."}], images=[str(png)])])
        be.close()
    assert out == ["yes", "yes"]
    first, second = sorted(recorder.bodies, key=lambda b: len(b["messages"]))
    [user] = first["messages"]
    assert user["role"] == "user" and [p["type"] for p in user["content"]] == ["image_url", "text"]
    uri = user["content"][0]["image_url"]["url"]
    assert uri.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == image.read_bytes()  # the file's bytes, unchanged
    assert user["content"][1]["text"] == "Is this a hepatic mass?"
    assert second["messages"][0] == {"role": "system", "content": "Be brief."}
    bmp_uri = second["messages"][1]["content"][0]["image_url"]["url"]
    assert bmp_uri.startswith("data:image/png;base64,")  # re-encoded: servers take PNG/JPEG


def test_prepare_step_flags_train_records_sharing_benchmark_images(data_root, tmp_path):
    from clinforge.data.load import load_records
    from clinforge.data.transforms import get_transform

    train = load_records(data_root / "vqa-rad", "vqa_rad", split="train", limit=120)
    step = get_transform("image_contamination", benchmarks=[
        {"name": "vqa_rad_test", "reader": "vqa_rad", "path": str(data_root / "vqa-rad"), "options": {"split": "test"}}])
    kept = list(step.apply(train))
    test_images = {r.images[0] for r in load_records(data_root / "vqa-rad", "vqa_rad", split="test")}
    expected = sum(1 for r in train if r.images[0] in test_images)  # same file = same image
    report = step.report()
    assert len(kept) == 120 and report["benchmarks"]["vqa_rad_test"]["images"] == 240
    assert report["contaminated"] == expected > 0
    assert all(("image_contamination" in r.meta) == (r.images[0] in test_images) for r in kept)


def test_yaml_vqa_task_on_own_data(tmp_path):
    from clinforge.eval.tasks.yaml_tasks import load_task_yaml

    _jpg(tmp_path / "imgs" / "xmlab1" / "source.jpg")
    rows = [{"qid": i, "img_name": "xmlab1/source.jpg", "question": f"Q{i}?", "answer": a, "q_lang": "en",
             "answer_type": t} for i, (a, t) in enumerate([("yes", "CLOSED"), ("left", "CLOSED"), ("liver", "OPEN")])]
    (tmp_path / "test.json").write_text(json.dumps(rows))
    (tmp_path / "task.yaml").write_text(f"task: my_vqa\ntype: vqa\nreader: slake\npath: {tmp_path}\n"
                                        "reader_options: {split: test}\n")
    task = load_task_yaml(tmp_path / "task.yaml")
    recs = task.records()
    assert task.vocabulary() == {"yes", "left"}
    scored = [task.score(r, {}, [o]) for r, o in zip(recs, ["Yes.", "on the left", "Liver"], strict=True)]
    assert [s["score"] for s in scored] == [1.0, 0.0, 1.0]  # "on the left" is not the answer "left": unparsed
    assert scored[1]["parse_status"] == "unparsed"
    (tmp_path / "bad.yaml").write_text(f"task: b\ntype: vqa\nreader: slake\npath: {tmp_path}\nscoring: lenient\n")
    with pytest.raises(Exception, match="scoring"):
        load_task_yaml(tmp_path / "bad.yaml")


@pytest.mark.parametrize("connector", ["mlp", "qformer"])
def test_hf_backend_on_clinforge_saved_vlm(tmp_path, data_root, connector):
    from clinforge.models.backends import load_backend
    from clinforge.models.backends.hf_vision import HFVisionBackend
    from clinforge.models.vlm import build_vlm, save_vlm

    model, proc = build_vlm({"vision": {"tiny": "clip"}, "connector": {"type": connector},
                             "llm": {"tiny": "llama"}})
    folder = save_vlm(model, proc, tmp_path / connector)
    be = load_backend(f"hf:{folder}", batch_size=2)
    assert isinstance(be, HFVisionBackend)
    images = [str(p) for p in sorted((data_root / "vqa-rad" / "images").glob("*.jpg"))[:2]]
    reqs = [GenerationRequest(prompt="Is there an effusion?", images=[img], max_new_tokens=5) for img in images]
    out = be.generate(reqs)
    assert len(out) == 2 and out == [be.generate([r])[0] for r in reqs]
    assert "".join(be.stream(reqs[0])) == out[0]
    # the placeholder tokens the processor adds are counted
    assert be.count_prompt_tokens(reqs[0]) >= proc.num_image_tokens


@pytest.mark.slow
def test_scoring_gap_benchmark_runs(tiny_llava, data_root, tmp_path):
    import os
    import re
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root / "src"), CLINFORGE_DATA=str(data_root))
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "vqa_scoring_gap.py"), "--model",
                           f"hf:{tiny_llava}", "--limit", "6", "--out", str(tmp_path / "gap.json")],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"RESULT closed_clinforge=\S+ closed_legacy=\S+ legacy_dropped=\d+ open_exact=\S+ "
                        r"open_recall_legacy=\S+", last), last
    assert "with images" in proc.stdout
    assert len(json.loads((tmp_path / "gap.json").read_text())["items"]) == 6
