"""A knowledge base in PostgreSQL + pgvector, for serving retrieval from more than one machine.

``publish_pgvector(kb_dir, dsn, table)`` copies a verified KB folder (chunks, vectors, manifest) into one table and
its ``<table>_manifest`` companion, in a single transaction (readers see the old version or the new one, never half).
``open_pgvector(dsn, table)`` gives a :class:`~clinforge.assist.kb.retriever.KnowledgeBase` whose dense search runs in
PostgreSQL (exact ``<#>`` inner-product scan, so it ranks as the FAISS flat index does; filters go into the
``WHERE`` clause, i.e. before ranking) and whose BM25 runs in-process over the chunk texts read from the table. A
second machine needs the DSN and the embedder, not the folder. The embedder's weights are checked against the
manifest's SHA-256, as for a folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from clinforge.assist.kb.chunking import Chunk
from clinforge.assist.kb.kb_store import load_embedder, read_chunks, read_manifest, verify_kb
from clinforge.assist.kb.retriever import FaissFlatIndex, KnowledgeBase, SearchSettings
from clinforge.core.errors import ConfigError

_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,50}$")


def _check_table(table: str) -> str:
    if not _TABLE.match(table):
        raise ConfigError(f"table name {table!r} must be lower-case letters, digits and _ (at most 51)", key="table")
    return table


def _vec(v: np.ndarray) -> str:
    # repr of a float32 as Python float round-trips exactly through pgvector's float4 parser
    return "[" + ",".join(repr(float(x)) for x in v) + "]"


def _connect(dsn: str):
    try:
        import psycopg
    except ImportError:
        raise ConfigError("PostgreSQL knowledge bases need psycopg (pip install 'clinforge[kb]')", key="dsn") from None
    return psycopg.connect(dsn)


def publish_pgvector(kb_dir: str | Path, dsn: str, table: str) -> dict[str, Any]:
    """Copy the KB folder into PostgreSQL table ``table`` (replacing what it held) in one transaction.

    Example:
        >>> publish_pgvector("kb/", "postgresql://kb@db.local/kb", "medquad")  # doctest: +SKIP
        {'table': 'medquad', 'chunks': 812, 'version': 1}
    """
    table = _check_table(table)
    verify_kb(kb_dir)
    manifest = read_manifest(kb_dir)
    chunks = read_chunks(kb_dir)
    vectors = FaissFlatIndex.read(str(Path(kb_dir) / "dense.faiss")).vectors()
    dim = int(manifest["embedder"]["dim"])
    with _connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
        cur.execute(f"DROP TABLE IF EXISTS {table}, {table}_manifest")
        cur.execute(f"CREATE TABLE {table} (pos integer PRIMARY KEY, id text NOT NULL, chunk jsonb NOT NULL, "
                    f"meta jsonb NOT NULL, embedding vector({dim}) NOT NULL)")
        cur.execute(f"CREATE TABLE {table}_manifest (manifest jsonb NOT NULL)")
        with cur.copy(f"COPY {table} (pos, id, chunk, meta, embedding) FROM STDIN") as copy:
            for pos, (c, v) in enumerate(zip(chunks, vectors, strict=True)):
                copy.write_row((pos, c.id, json.dumps(c.as_dict(), ensure_ascii=False),
                                json.dumps(c.metadata(), ensure_ascii=False), _vec(v)))
        cur.execute(f"INSERT INTO {table}_manifest VALUES (%s)", (json.dumps(manifest),))
    return {"table": table, "chunks": len(chunks), "version": manifest["version"]}


class PgVectorIndex:
    """Dense search in PostgreSQL: an exact scan ordered by negative inner product, restricted to allowed rows."""

    def __init__(self, dsn: str, table: str):
        self.table = _check_table(table)
        self.conn = _connect(dsn)
        self.conn.autocommit = True

    def search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None) -> list[tuple[int, float]]:
        where, args = "", [_vec(vector)]
        if allowed is not None:
            ids = np.flatnonzero(allowed).tolist()
            if not ids:
                return []
            where = "WHERE pos = ANY(%s)"
            args.append(ids)
        # <#> is the negative inner product; ties ordered by position as in the FAISS path
        sql = (f"SELECT pos, -(embedding <#> %s::vector) AS score FROM {self.table} {where} "
               f"ORDER BY score DESC, pos LIMIT {int(k)}")
        rows = self.conn.execute(sql, args).fetchall()
        return [(int(p), float(s)) for p, s in rows]

    def close(self) -> None:
        self.conn.close()


def open_pgvector(dsn: str, table: str, *, settings: SearchSettings | None = None) -> KnowledgeBase:
    """A :class:`KnowledgeBase` served from PostgreSQL (see the module docstring).

    Example:
        >>> kb = open_pgvector("postgresql://kb@db.local/kb", "medquad")  # doctest: +SKIP
        >>> kb.search("asthma inhaler", k=3)[0].metadata["source"]  # doctest: +SKIP
        'medquad'
    """
    index = PgVectorIndex(dsn, table)
    row = index.conn.execute(f"SELECT manifest FROM {index.table}_manifest").fetchone()
    if row is None:
        raise ConfigError(f"table {table}_manifest is empty: publish the KB first", key="table")
    manifest = row[0]
    chunks = [Chunk(**r[0]) for r in index.conn.execute(f"SELECT chunk FROM {index.table} ORDER BY pos")]
    return KnowledgeBase(chunks, index, lambda: load_embedder(manifest, f"{dsn.split('@')[-1]} table {table}"),
                         manifest=manifest, settings=settings)
