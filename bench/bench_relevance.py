"""Citation relevance on the labelled set (tests/fixtures/relevance_set.json): which priors an answer cites.

The priors are posted to a real store (SQLite, FTS5) and indexed in the SQL vector engine, and each
question is retrieved as the Chorus loop retrieves it. Three rules are measured:
  before    the previous answerer: the top 3 vector hits (cosine >= 0.2) are quoted and cited
  cosine    the best hybrid hit alone, when its cosine clears a calibrated bar (cosine alone)
  after     `chorus.relevance.supporting` on the hybrid hits: words, asking-vs-answering, runner-up margin
Columns: recall (answerable questions whose answering prior is cited), precision (cited priors that are
the answering prior, over every question), silent (unanswerable questions answered with no citation).
`--calibrate` searches the constants on the even topics and reports the odd (held-out) ones beside.

    python -m bench relevance [--calibrate]
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from choir.chorus import relevance
from choir.chorus.embed import Embedder
from choir.chorus.embedders import default_embedder
from choir.chorus.retrieval import Retriever
from choir.engine import Coordinator
from choir.program import CreateThread, PostMessage
from choir.store.sql import Store
from choir.store.vectors import SqlVectorIndex, VectorPoint
from choir.store.vectors.protocol import point_id

SET = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "relevance_set.json"
TOP_K = 20  # as the Chorus loop retrieves
BEFORE_QUOTES = 3
MIN_COSINE = 0.2


@dataclass(frozen=True)
class Case:
    question: str
    answer: str | None  # the answering prior's message id; None: nobody wrote about it
    half: int  # 0: calibration, 1: held out
    hybrid: list[tuple[str, str, float]]  # (message id, text, cosine), best fused first
    vector: list[tuple[str, float]]  # (message id, cosine), best first
    judged: list[relevance.Judged]  # the hybrid hits' features (their words, whether they ask)


@dataclass
class Score:
    recall: float
    precision: float
    silent: float
    cited: int

    def cells(self) -> list[str]:
        return [f"{self.recall:.2f}", f"{self.precision:.2f}", f"{self.silent:.2f}", str(self.cited)]


Rule = Callable[[Case], list[str]]


def load_cases(embedder: Embedder) -> list[Case]:
    data = json.loads(SET.read_text())
    with tempfile.TemporaryDirectory(prefix="choir-relevance-") as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'choir.db'}")
        clock = lambda: datetime(2026, 1, 1, tzinfo=UTC)  # noqa: E731
        coordinator = Coordinator.open(store, clock=clock)
        threads = sorted({p["thread"] for p in data["priors"]})
        for thread in threads:
            coordinator.execute(CreateThread(f"author-{thread}", thread, thread.title()))
        for prior in data["priors"]:
            coordinator.execute(
                PostMessage(f"author-{prior['thread']}", prior["thread"], prior["id"], prior["text"])
            )
        index = SqlVectorIndex(store.engine)
        vectors = embedder.embed([p["text"] for p in data["priors"]])
        index.upsert(
            [
                VectorPoint(
                    p["id"], p["thread"], v, "public", False, point_id(p["id"]), f"author-{p['thread']}"
                )
                for p, v in zip(data["priors"], vectors, strict=True)
            ]
        )
        text_of = {p["id"]: p["text"] for p in data["priors"]}
        retriever = Retriever(embedder, index, store)
        cases = []
        for number, q in enumerate(data["questions"]):
            half = number % 2
            hybrid = [
                (f.message_id, text_of[f.message_id], f.cosine)
                for f in retriever.search(q["q"], TOP_K, threads)
            ]
            query = embedder.embed([q["q"]])[0]
            vector = [(h.message_id, h.score) for h in index.search(query, TOP_K, MIN_COSINE)]
            judged = relevance.judge(q["q"], [(text, cosine) for _, text, cosine in hybrid])
            cases.append(Case(q["q"], q["answer"], half, hybrid, vector, judged))
        index.close()
        store.close()
    return cases


def score(cases: Sequence[Case], rule: Rule) -> Score:
    answerable = [c for c in cases if c.answer is not None]
    unanswerable = [c for c in cases if c.answer is None]
    found = right = cited = silent = 0
    for case in cases:
        ids = rule(case)
        cited += len(ids)
        if case.answer is None:
            silent += not ids
        else:
            found += case.answer in ids
            right += ids.count(case.answer)
    return Score(
        found / max(1, len(answerable)),
        right / cited if cited else 1.0,
        silent / max(1, len(unanswerable)),
        cited,
    )


def before(case: Case) -> list[str]:
    return [m for m, _ in case.vector[:BEFORE_QUOTES]]


def cosine_alone(bar: float) -> Rule:
    def rule(case: Case) -> list[str]:
        best = max(case.hybrid, key=lambda h: h[2], default=None)
        return [best[0]] if best is not None and best[2] >= bar else []

    return rule


def after(bar: float, within: float, words_weight: float, asks_penalty: float) -> Rule:
    def rule(case: Case) -> list[str]:
        rescored = [
            relevance.Judged(j.index, relevance.score_of(j.cosine, j.words, j.asks, words_weight, asks_penalty),
                             j.cosine, j.words, j.asks)
            for j in case.judged
        ]  # fmt: skip
        return [case.hybrid[j.index][0] for j in relevance.select(rescored, bar=bar, within=within)]

    return rule


def objective(s: Score) -> tuple[bool, float]:
    # The targets first (recall >= 0.9, precision >= 0.8, silent >= 0.8), then F1 with silence.
    meets = s.recall >= 0.9 and s.precision >= 0.8 and s.silent >= 0.8
    return meets, 2 * s.recall * s.precision / max(1e-9, s.recall + s.precision) + 0.5 * s.silent


def calibrate(cases: Sequence[Case]) -> tuple[dict[str, float], float]:
    train = [c for c in cases if c.half == 0]
    best: tuple[tuple[bool, float], dict[str, float]] | None = None
    grid = itertools.product(
        [x / 100 for x in range(30, 86, 2)],  # bar
        [0.0, 0.03, 0.05, 0.08],  # within
        [0.0, 0.1, 0.2, 0.3, 0.4],  # words weight
        [0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 1.0],  # asks penalty (1.0: a question is never cited)
    )
    for bar, within, words, asks_ in grid:
        value = objective(score(train, after(bar, within, words, asks_)))
        if best is None or value > best[0]:
            best = (value, {"bar": bar, "within": within, "words_weight": words, "asks_penalty": asks_})
    assert best is not None
    cosine_bar = max(
        (x / 100 for x in range(30, 90, 2)), key=lambda b: objective(score(train, cosine_alone(b)))
    )
    return best[1], cosine_bar


def table(rows: list[tuple[str, str, Score]]) -> None:
    header = ["rule", "questions", "recall", "precision", "silent", "cited"]
    lines = [header] + [[name, part, *s.cells()] for name, part, s in rows]
    widths = [max(len(r[i]) for r in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench relevance", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="(the same run: the set is small)")
    parser.add_argument("--calibrate", action="store_true", help="search the constants on the even topics")
    args = parser.parse_args(argv)
    cases = load_cases(default_embedder())
    constants = {
        "bar": relevance.BAR,
        "within": relevance.RUNNER_UP_WITHIN,
        "words_weight": relevance.WORDS_WEIGHT,
        "asks_penalty": relevance.ASKS_PENALTY,
    }
    cosine_bar = 0.5
    if args.calibrate:
        constants, cosine_bar = calibrate(cases)
        print("calibrated on the even topics:", json.dumps(constants), f"(cosine alone: bar {cosine_bar})")
    parts: list[tuple[str, list[Case]]] = [
        ("calibration", [c for c in cases if c.half == 0]),
        ("held out", [c for c in cases if c.half == 1]),
        ("all", list(cases)),
    ]
    rules: list[tuple[str, Rule]] = [
        ("before: top 3 vector hits", before),
        (f"cosine alone >= {cosine_bar}", cosine_alone(cosine_bar)),
        ("after: chorus.relevance", after(**constants)),
    ]
    answerable = sum(c.answer is not None for c in cases)
    print(
        f"{len(cases)} questions ({answerable} answerable), {len(json.loads(SET.read_text())['priors'])} priors"
    )
    table(
        [
            (name, f"{part} ({len(subset)})", score(subset, rule))
            for name, rule in rules
            for part, subset in parts
        ]
    )


if __name__ == "__main__":
    main()
