#!/usr/bin/env python3
"""Golden values for lethe's MIA-Efficacy (tests/unlearn/test_mia.cpp).

Builds a fixed, seeded set of softmax outputs (members, non-members, forget samples; 10
classes), computes the four attack features exactly as the reference (Unlearn-Sparse's
evaluation/SVC_MIA.py) does, fits scikit-learn's SVC(C=3, gamma="auto", kernel="rbf") on
members (label 1) vs non-members (label 0) and records the share of forget samples it predicts
as non-members. lethe must match each share to within one forget sample.

Usage (Debian 12: apt-get install python3-sklearn):
    /usr/bin/python3 scripts/make_mia_golden.py > tests/unlearn/golden/mia_golden.json
"""
import json
import sys

import numpy as np
import sklearn
from sklearn.svm import SVC

C = 10
SEED = 20231
N_MEMBERS, N_NONMEMBERS, N_FORGET = 250, 250, 150


def softmax_rows(logits):
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def outputs(rng, n, margin, noise, flip):
    """Softmax rows whose true class gets `margin` extra logit; a share `flip` of rows get the
    margin on a wrong class instead (misclassified samples)."""
    labels = rng.integers(0, C, size=n)
    logits = rng.normal(0.0, noise, size=(n, C))
    target = labels.copy()
    wrong = rng.random(n) < flip
    target[wrong] = (labels[wrong] + rng.integers(1, C, size=wrong.sum())) % C
    logits[np.arange(n), target] += margin
    return softmax_rows(logits), labels.astype(np.int32)


def features(prob, labels, kind):
    if kind == "confidence":
        return prob[np.arange(len(labels)), labels][:, None]
    if kind == "entropy":
        # torch: -where(p > 0, p * log(p), 0).sum(-1), in float32
        with np.errstate(divide="ignore", invalid="ignore"):
            plogp = np.where(prob > 0, prob * np.log(prob), np.float32(0)).astype(np.float32)
        return (-plogp.sum(axis=1, dtype=np.float32))[:, None]
    if kind == "correctness":
        return (np.argmax(prob, axis=1) == labels).astype(np.int64)[:, None]
    if kind == "probability":
        return prob
    raise ValueError(kind)


def main():
    rng = np.random.default_rng(SEED)
    members = outputs(rng, N_MEMBERS, margin=5.0, noise=1.0, flip=0.02)
    nonmembers = outputs(rng, N_NONMEMBERS, margin=2.5, noise=1.5, flip=0.25)
    half = N_FORGET // 2
    f1 = outputs(rng, half, margin=5.0, noise=1.0, flip=0.02)
    f2 = outputs(rng, N_FORGET - half, margin=2.5, noise=1.5, flip=0.25)
    forget = (np.concatenate([f1[0], f2[0]]), np.concatenate([f1[1], f2[1]]))

    golden = {}
    for kind in ["confidence", "entropy", "correctness", "probability"]:
        xm = features(*members, kind)
        xn = features(*nonmembers, kind)
        xf = features(*forget, kind)
        x = np.concatenate([xm, xn]).reshape(N_MEMBERS + N_NONMEMBERS, -1)
        y = np.concatenate([np.ones(N_MEMBERS), np.zeros(N_NONMEMBERS)])
        clf = SVC(C=3, gamma="auto", kernel="rbf")
        clf.fit(x, y)
        pred = clf.predict(xf.reshape(N_FORGET, -1))
        golden[kind] = {"nonmember_share": float(1.0 - pred.mean()),
                        "nonmembers_predicted": int((pred == 0).sum())}

    def dump(prob, labels):
        # The shortest decimal that reads back as the same float32 (lethe parses it and rounds
        # to float32, recovering the exact value the SVC saw).
        return {"probs": [[float(str(v)) for v in row] for row in prob],
                "labels": [int(v) for v in labels]}

    out = {
        "generator": "scripts/make_mia_golden.py",
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "svc": "SVC(C=3, gamma='auto', kernel='rbf'), defaults otherwise (tol 1e-3, shrinking)",
        "num_classes": C,
        "members": dump(*members),
        "nonmembers": dump(*nonmembers),
        "forget": dump(*forget),
        "expected": golden,
    }
    json.dump(out, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
