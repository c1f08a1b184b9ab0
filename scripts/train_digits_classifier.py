"""Train the small digits classifier whose features define the Fréchet digits distance.

    python scripts/train_digits_classifier.py [--epochs 100] [--seed 0] [--out PATH]

Trains on the ``classifier`` split only (359 images); seeded and CPU-only (about 10 s on one
core); writes a ``state_dict`` to ``src/diffnotes/data/digits_classifier.pt`` and prints the
accuracy on the evaluation split (648 images the classifier never saw). Re-run it only when
:class:`diffnotes.features.DigitsClassifier` changes: every Fréchet digits distance in the book
depends on these weights.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from diffnotes.features import WEIGHTS_PATH, classifier_accuracy, train_digits_classifier


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(WEIGHTS_PATH))
    args = parser.parse_args(argv)

    torch.set_num_threads(1)  # fixed thread count: the same weights on every machine we tried
    start = time.perf_counter()
    model = train_digits_classifier(epochs=args.epochs, seed=args.seed, log=print)
    train_acc, test_acc = classifier_accuracy(model, "classifier"), classifier_accuracy(model, "eval")
    torch.save(model.state_dict(), args.out)
    print(f"classifier-split accuracy {train_acc:.4f}  eval accuracy {test_acc:.4f}  "
          f"({time.perf_counter() - start:.1f} s)  -> {args.out}")
    if test_acc < 0.95:
        print("error: held-out accuracy below 0.95", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
