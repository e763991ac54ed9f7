"""``lmlab ngram adapt``: each kind end to end on a small user corpus, the eval hook, one-line errors."""

from __future__ import annotations

import json

import pytest
import typer

from lmlab.cli import main as cli_main
from lmlab.data.corpus import document_sentences
from lmlab.data.vocab import closed_vocabulary
from lmlab.errors import LmlabError
from lmlab.ngram import build, write_arpa


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, wiki_small):
    """A JSONL user corpus of 200 wiki-vital-small documents and an MKN 3-gram ARPA on its train split."""
    from lmlab.data import sources

    folder = tmp_path_factory.mktemp("adapt")
    corpus = folder / "docs.jsonl"
    with corpus.open("w", encoding="utf-8") as f:
        for d in wiki_small.documents[:200]:
            f.write(json.dumps({"id": d.id, "text": d.text, "topic": d.meta.get("topic") or "none"}) + "\n")
    train = [s for d in document_sentences(sources.load(str(corpus)).split().train) for s in d]
    arpa = folder / "base.arpa"
    write_arpa(build(train, order=3, smoothing="mkn", vocab=closed_vocabulary(train, 2)), arpa)
    return folder, corpus, arpa


def run(capsys, *args) -> tuple[int, str, str]:
    """Run ``lmlab ngram ARGS`` in-process: a root app whose ``ngram`` group has the adapt command, with
    errors printed by ``lmlab.cli.main.fail`` exactly as ``lmlab`` prints them (one line, exit code)."""
    from lmlab.cli.ngram_adapt import register_adapt

    group = typer.Typer()
    register_adapt(group)
    group.command("noop")(lambda: None)                # a second command keeps 'adapt' a sub-command
    root = typer.Typer(pretty_exceptions_enable=False)
    root.add_typer(group, name="ngram")
    root.command("noop")(lambda: None)
    code = 0
    try:
        root(args=["ngram", *args], prog_name="lmlab", standalone_mode=False)
    except LmlabError as err:
        try:
            cli_main.fail(str(err), err.exit_code)
        except SystemExit as exit_:
            code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cache_end_to_end(capsys, workspace):
    from lmlab.recipes.adaptive import eval_adapted

    folder, corpus, arpa = workspace
    code, out, err = run(capsys, "adapt", "cache", "-m", str(arpa), "-c", str(corpus),
                       "--cache-size", "20,100", "--decay", "0,0.05")
    assert code == 0, out + err
    saved = json.loads((folder / "base.cache.json").read_text())
    assert saved["type"] == "cache" and saved["cache_size"] in (20, 100) and 0 < saved["lambda"] < 1
    assert len(saved["grid"]) == 4 and "tuned: lambda=" in out
    text = folder / "two_docs.txt"
    text.write_text("the city is on the river .\nthe river is long .\n\nmusic is art .\n", encoding="utf-8")
    model, ev = eval_adapted(folder / "base.cache.json", str(text))
    assert ev.tokens == (7 + 1) + (5 + 1) + (4 + 1) and ev.sentences == 3 and model.kind in ("cache", "decaying cache")
    assert saved["test_ppl"] < saved["test_base_ppl"]


def test_mixture_by_metadata_and_kmeans(capsys, workspace):
    folder, corpus, arpa = workspace
    code, out, err = run(capsys, "adapt", "mixture", "-m", str(arpa), "-c", str(corpus), "--k", "2",
                       "--beta", "0,1")
    assert code == 0, out + err
    saved = json.loads((folder / "base.mixture.json").read_text())
    weights = [c["weight"] for c in saved["components"]]
    assert abs(sum(weights) - 1) < 1e-9 and saved["components"][0]["name"] == "general"
    assert all(b >= a - 1e-12 for a, b in zip(saved["em_loglik"], saved["em_loglik"][1:]))
    assert (folder / saved["components"][1]["arpa"]).is_file()
    code, out, err = run(capsys, "adapt", "mixture", "-m", str(arpa), "-c", str(corpus), "--by", "topic",
                       "--out", str(folder / "by_topic.json"))
    assert code == 0, out + err
    code, _, err = run(capsys, "adapt", "mixture", "-m", str(arpa), "-c", str(corpus), "--by", "topik",
                       "--force")  # base.mixture.json exists: replacing it is not what this checks
    assert code == 2 and "did you mean 'topic'" in err


def test_maxent_end_to_end(capsys, workspace):
    from lmlab.cli.ngram_adapt import print_eval_adapted

    folder, corpus, arpa = workspace
    code, out, err = run(capsys, "adapt", "maxent", "-m", str(arpa), "-c", str(corpus), "--epochs", "1",
                       "--vocab-size", "300", "--triggers", "200")
    assert code == 0, out + err
    saved = json.loads((folder / "base.maxent.json").read_text())
    assert 0 <= saved["mu"] <= 1 and (folder / "base.maxent.safetensors").is_file()
    print_eval_adapted(folder / "base.maxent.json", _doc_file(folder))
    assert "Perplexity including OOVs" in capsys.readouterr().out


def _doc_file(folder):
    path = folder / "eval.txt"
    path.write_text("the city is large .\n\nthe war ended .\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("args,message", [
    (["adapt", "cachee"], "unknown adaptation type 'cachee' (did you mean 'cache'?)"),
    (["adapt", "cache", "--cache-size", "0"], "cache size must be a positive integer"),
    (["adapt", "cache", "--cache-size", "-5,10"], "cache size must be a positive integer"),
    (["adapt", "cache", "--decay", "-1"], "α must be >= 0"),
    (["adapt", "mixture", "--beta", "0,2"], "--beta: values must be in [0, 1]"),
])
def test_bad_arguments_one_line(capsys, workspace, args, message):
    _, corpus, arpa = workspace
    code, _, err = run(capsys, *args[:2], "-m", str(arpa), "-c", str(corpus), *args[2:])
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and err.startswith("lmlab: error:")


def test_base_model_must_be_arpa(capsys, workspace):
    folder, corpus, _ = workspace
    not_arpa = folder / "notes.txt"
    not_arpa.write_text("just some text\n", encoding="utf-8")
    for path, message in [(not_arpa, "not an ARPA file"), (folder / "missing.arpa", "no such ARPA file"),
                          (folder / "x.cache.json", "must be an ARPA file")]:
        code, _, err = run(capsys, "adapt", "cache", "-m", str(path), "-c", str(corpus))
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_wired_into_lmlab_ngram(cli, workspace):
    """Once the lead attaches ``register_adapt`` to ``lmlab ngram``, the real command gives the same errors."""
    from lmlab.cli import ngram

    if "adapt" not in {c.name for c in ngram.app.registered_commands}:
        pytest.skip("lmlab ngram adapt not wired into cli/ngram.py yet")
    _, corpus, arpa = workspace
    result = cli("ngram", "adapt", "nope", "-m", str(arpa), "-c", str(corpus))
    assert result.returncode == 2 and "unknown adaptation type 'nope'" in result.stderr
