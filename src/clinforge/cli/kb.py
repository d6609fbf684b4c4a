"""``clinforge kb``: build, update, verify, search, evaluate and publish knowledge bases (thin: parse, call, print)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from clinforge.cli.shared_options import NO_PROGRESS

app = typer.Typer(no_args_is_help=True)


def _sources(items: list[str], limit: int | None, licence: str | None):
    from clinforge.assist.kb import SourceSpec

    specs = [SourceSpec.parse(s) for s in items]
    for s in specs:
        s.limit, s.licence = limit, licence
    return specs


def _settings(mode: str, fusion: str, rrf_k: float, weights: str | None, candidates: int):
    from clinforge.assist.kb import SearchSettings
    from clinforge.core.errors import ConfigError

    w = None
    if weights:
        try:
            a, b = (float(x) for x in weights.split(","))
        except ValueError:
            raise ConfigError(f"--weights {weights!r} must be two numbers, bm25,dense (e.g. 0.3,0.7)",
                              key="--weights") from None
        w = (a, b)
    return SearchSettings(mode=mode, fusion=fusion, rrf_k=rrf_k, weights=w, candidates=candidates)


def _filters(items: list[str]) -> dict | None:
    """``field=value``; the value is YAML read with every scalar kept as a string (metadata compares as strings, and
    YAML 1.1 would turn ``yes`` into true)."""
    import yaml

    from clinforge.core.errors import ConfigError

    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"filter {item!r} must look like field=value", key="--filter")
        try:
            out[key.strip()] = yaml.load(raw, Loader=yaml.BaseLoader) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"filter {key.strip()!r}: value is not valid YAML ({exc})", key="--filter") from None
    return out or None


def _print(obj: dict, as_json: bool, line: str) -> None:
    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False) if as_json else line)


@app.command("build")
def build(
    out: Path = typer.Argument(..., help="Folder to write the knowledge base to."),
    source: list[str] = typer.Option(..., "--source", "-s", help="FORMAT:PATH, repeatable: any reader name "
                                     "(medquad, pubmedqa, jsonl, ...), folder (txt/md/html) or kbjsonl."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="First N documents of each source."),
    licence: str | None = typer.Option(None, "--licence", help="Licence to record on every chunk (overrides)."),
    embedder: str = typer.Option("minilm", "--embedder", help="minilm (offline package) or a local folder."),
    chunk_size: int = typer.Option(1000, "--chunk-size", help="Characters per chunk (about)."),
    overlap: int = typer.Option(150, "--overlap", help="Characters of whole sentences carried between chunks."),
    threads: int = typer.Option(1, "--threads", min=1, help="Torch threads for embedding (recorded: the bytes "
                                                                 "depend on it)."),
    embed_block: int = typer.Option(256, "--embed-block", min=1, help="Texts per embedding checkpoint block (an "
                                                                       "interrupted build resumes at block level)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Build a versioned, verifiable knowledge base from documents.

    Example: clinforge kb build kb/ --source medquad:data/medquad --source folder:docs/
    """
    from clinforge.assist.kb import build_kb

    m = build_kb(out, _sources(source, limit, licence), embedder=embedder, chunk_size=chunk_size, overlap=overlap,
                 threads=threads, overwrite=overwrite, embed_block=embed_block)
    resumed = f" ({m['resumed_blocks']} embedding blocks resumed from an interrupted run)" if m["resumed_blocks"] else ""
    _print(m, as_json, f"built {out}: version {m['version']}, {m['counts']['documents']} documents, "
                       f"{m['counts']['chunks']} chunks, embedder {m['embedder']['name']}{resumed}")


@app.command("update")
def update(
    kb: Path = typer.Argument(..., help="Knowledge-base folder."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="Torch threads (default: the manifest's)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Re-read the sources and re-embed only the chunks whose text changed.

    Example: clinforge kb update kb/
    """
    from clinforge.assist.kb import update_kb

    r = update_kb(kb, threads=threads)
    line = (f"updated {kb} to version {r['version']}: {r['embedded']} chunks embedded, {r['reused']} reused, "
            f"+{r['added']} -{r['removed']}") if r["changed"] else f"{kb} is up to date (version {r['version']})"
    _print(r, as_json, line)


@app.command("verify")
def verify(kb: Path = typer.Argument(..., help="Knowledge-base folder."), no_progress: bool = NO_PROGRESS) -> None:
    """Check every file and chunk against the manifest; exits non-zero naming the first tampered file.

    Example: clinforge kb verify kb/
    """
    from clinforge.assist.kb import verify_kb

    r = verify_kb(kb)
    typer.echo(f"{kb}: ok ({r['files']} files, {r['chunks']} chunks match the manifest)")


@app.command("search")
def search(
    kb: str = typer.Argument(..., help="Knowledge-base folder, or a PostgreSQL DSN with --table."),
    query: str = typer.Argument(..., help="The query."),
    k: int = typer.Option(5, "--k", "-k", min=1, help="Number of chunks."),
    mode: str = typer.Option("hybrid", "--mode", help="bm25 | dense | hybrid."),
    fusion: str = typer.Option("rrf", "--fusion", help="rrf | weighted (hybrid mode)."),
    rrf_k: float = typer.Option(60.0, "--rrf-k", help="RRF constant k."),
    weights: str | None = typer.Option(None, "--weights", help="bm25,dense weights, e.g. 0.3,0.7."),
    candidates: int = typer.Option(100, "--candidates", min=1, help="Candidates per member before fusion."),
    filter: list[str] = typer.Option([], "--filter", "-f", help="field=value (YAML value; a list means any of; "
                                     "{gte: 2010} a range), repeatable; applied before ranking."),
    table: str | None = typer.Option(None, "--table", help="PostgreSQL table (KB given as a DSN)."),
    as_json: bool = typer.Option(False, "--json", help="Print results as JSON."),
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Search a knowledge base.

    Example: clinforge kb search kb/ "inhaled steroids for asthma" -k 3 --filter source=medquad
    """
    from clinforge.assist.kb.kb_store import search_kb

    hits = search_kb(kb, query, k=k, filters=_filters(filter), table=table,
                     settings=_settings(mode, fusion, rrf_k, weights, candidates))
    if as_json:
        typer.echo(json.dumps(hits, indent=2, ensure_ascii=False))
        return
    for n, h in enumerate(hits, 1):
        md = h["metadata"]
        typer.echo(f"[{n}] {h['score']:.4f} {md['title'] or ''} | {md['source']} | {md['doc_id']} | {h['id'][:12]}")
        typer.echo("    " + h["text"][:200].replace("\n", " "))


@app.command("eval")
def evaluate(
    kb: Path = typer.Argument(..., help="Knowledge-base folder."),
    questions: str = typer.Option(..., "--questions", "-q", help="FORMAT:PATH of the questions (a reader whose "
                                  "record ids are the KB's document ids, e.g. the source the KB was built from)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="First N questions."),
    modes: str = typer.Option("bm25,dense,hybrid", "--modes", help="Comma-separated modes to compare."),
    fusion: str = typer.Option("rrf", "--fusion", help="rrf | weighted."),
    rrf_k: float = typer.Option(60.0, "--rrf-k", help="RRF constant k."),
    weights: str | None = typer.Option(None, "--weights", help="bm25,dense weights."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    n_boot: int = typer.Option(1000, "--n-boot", min=1, help="Bootstrap resamples."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the full result as JSON here."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Question -> own passage retrieval: recall@1/5/10 and MRR@10 with bootstrap CIs, and query latency.

    Example: clinforge kb eval kb/ --questions pubmedqa:data/ori_pqal.json --seed 0
    """
    from clinforge.assist.kb import SourceSpec
    from clinforge.assist.kb.kb_eval import eval_kb
    from clinforge.core.errors import OutputExistsError
    from clinforge.core.io import atomic_write_json

    if out is not None and out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists; pass --overwrite to replace it")
    spec = SourceSpec.parse(questions)
    spec.limit = limit
    r = eval_kb(str(kb), spec, modes=tuple(m.strip() for m in modes.split(",") if m.strip()),
                settings=_settings("hybrid", fusion, rrf_k, weights, 100), seed=seed, n_boot=n_boot)
    if out is not None:
        atomic_write_json(out, r, overwrite=overwrite)
    if as_json:
        typer.echo(json.dumps(r, indent=2, ensure_ascii=False))
        return
    typer.echo(f"{r['scored']} questions scored ({r['gold_missing']} without their passage in the KB), seed {seed}")
    for mode, m in r["modes"].items():
        cells = "  ".join(f"{k} {m[k]['value']:.3f} [{m[k]['ci'][0]:.3f}, {m[k]['ci'][1]:.3f}]"
                          for k in ("recall@1", "recall@5", "recall@10", "mrr@10"))
        typer.echo(f"{mode:7s} {cells}  p95 {m['p95_ms']:.1f} ms")


@app.command("publish")
def publish(
    kb: Path = typer.Argument(..., help="Knowledge-base folder."),
    dsn: str = typer.Option(..., "--dsn", help="PostgreSQL connection string (pgvector extension available)."),
    table: str = typer.Option(..., "--table", help="Table to (re)create."),
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Copy a verified KB folder into PostgreSQL + pgvector, for search from several machines.

    Example: clinforge kb publish kb/ --dsn postgresql://kb@db/kb --table medquad
    """
    from clinforge.assist.kb import publish_pgvector

    r = publish_pgvector(kb, dsn, table)
    typer.echo(f"published {kb} (version {r['version']}, {r['chunks']} chunks) to table {r['table']}")
