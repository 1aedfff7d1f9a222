"""``--recipe auto``: the fastest (or smallest) model within the accuracy budget, searched per conv block.

In NetAdapt's manner (Yang et al., ECCV 2018), against latencies measured where the model will run:

1. Start from the baseline's shape converted with the final quantization and timed, and from its head swapped for
   global average pooling when it has a dense head (kept when within the budget and no slower).
2. Each iteration asks for the goal figure cut by ``step``; every block that can meet it alone proposes its
   mildest thinner level, the smallest-L1 filters removed and the layers after the cut refitted by least squares
   (:mod:`vggedge.steps.reconstruct`), then converted, timed (:mod:`~vggedge.auto.timing`) and scored on the search
   split. The best within the budget and faster than the current shape becomes current; when none is, the step
   halves. With time left, the descent goes on under a looser bar (the stretch).
3. Every kept shape is only proposed: the path is validated by bisection (:mod:`~vggedge.auto.validation`), each
   probe built with the found recipe's own fine-tunes and judged by :func:`~vggedge.auto.rules.drop_bound`.
4. The fastest shape that passes becomes an explicit recipe (:func:`~vggedge.auto.rules.recipe_for`) that the run
   then applies from the baseline like any other; its ``recipe.toml`` replays it.

The search split is carved from the training images (or ``--search-data``), never the evaluation images. The
measurements behind each choice are in ``docs/guides/auto.md``.
"""
