"""Table 1 statistics: distribution uniformity U (eqs. 1-3), token counts, the t-SNE figure."""

import math

import numpy as np
import pytest

from ifforge.build.stats.uniformity import distribution_uniformity, nearest_neighbour_distances

# A small fixed set: two tight pairs, a far point, a duplicate of another point (distance 0), in 3-D.
EMB = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.2, 0.1], [3.0, -2.0, 5.0],
                [0.1, 0.0, 0.0], [-0.5, 0.4, 0.3]])


def brute_force_u(points):
    q = len(points)
    d = [min(math.dist(points[i], points[j]) for j in range(q) if j != i) for i in range(q)]
    mu = sum(d) / q
    return sum((x - mu) ** 2 for x in d) / q


def test_u_matches_a_brute_force_computation():
    assert distribution_uniformity(EMB) == pytest.approx(brute_force_u(EMB.tolist()), rel=1e-12, abs=1e-15)
    # chunking (memory bound for large sets) changes nothing
    assert np.allclose(nearest_neighbour_distances(EMB, chunk=2), nearest_neighbour_distances(EMB))
    assert nearest_neighbour_distances(EMB)[1] == 0.0  # its duplicate is its nearest neighbour


def test_u_of_a_larger_random_set_and_edge_cases():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(60, 8))
    assert distribution_uniformity(pts) == pytest.approx(brute_force_u(pts.tolist()), rel=1e-9)
    assert distribution_uniformity(pts[:1]) is None
    assert distribution_uniformity(np.ones((5, 3))) == 0.0  # every distance 0: perfectly uniform


def test_token_counts_use_the_configured_tokenizer_offline():
    from transformers import AutoTokenizer

    from ifforge.build.stats.tokens import TokenCounter
    from ifforge.models import resolve_model

    texts = ["Write a haiku about rain.", "Write a haiku about rain.", "Be polite, and use at most 20 words!"]
    counter = TokenCounter("smollm2-135m-instruct")
    tok = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m-instruct"))
    expected = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    assert counter.counts(texts) == expected
    assert counter.average(texts) == round(sum(expected) / 3, 1) and counter.average([]) is None


def test_tsne_figure(tmp_path):
    from ifforge.build.stats.tsne import plot_panels

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(12, 16)), rng.normal(loc=3.0, size=(9, 16))
    out = plot_panels(tmp_path / "f.png", [("instructions", [("original", "gray", a), ("variant", "orange", b)]),
                                           ("too small", [("x", "blue", a[:2])])])
    assert out == tmp_path / "f.png" and out.stat().st_size > 5_000
    assert plot_panels(tmp_path / "g.png", [("tiny", [("x", "gray", a[:3])])]) is None
