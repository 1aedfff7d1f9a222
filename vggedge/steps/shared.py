"""Steps that several recipes of one run begin with are applied once and handed to each.

``optimize --recipe all`` runs ``gap``, ``gap-int8`` and ``edge``, which all begin with the same head step
(same parameters; step ``i`` is seeded ``seed + i`` whatever ran before it, :func:`vggedge.steps.apply_steps`).
Run on its own, each recipe would train that head from the same model with the same seed, so applying it
once changes what the recipes compute only by TensorFlow's thread-order noise, and it makes them comparable:
``gap-int8`` is then exactly ``gap``'s model quantized. The run takes less time (a fine-tune or more per
shared prefix) and the report says which recipe's step a result reused.

Only the prefixes a later recipe of the run needs are kept, and each is let go after its last user: a
full-size VGG16 is half a gigabyte a copy. A distributed run's workers hold the same table, so chief and
workers skip the same steps and stay in lock-step.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Sequence

from vggedge.backend.keras_env import keras
from vggedge.recipe.schema import Recipe


def prefix_key(recipe: Recipe, length: int) -> str:
    """The identity of the first ``length`` steps: every parameter, as the recipe file would write it."""
    return json.dumps([step.model_dump(mode="json") for step in recipe.steps[:length]], sort_keys=True)


@dataclasses.dataclass
class SharedPrefix:
    owner: str  # the recipe that applied these steps
    model: keras.Model
    records: list[dict]


@dataclasses.dataclass
class Reused:
    """What a recipe takes over: the model after its first ``steps`` steps and their records (each naming the
    recipe that applied it, ``shared_with``)."""

    steps: int
    model: keras.Model
    records: list[dict]


class SharedSteps:
    """The step prefixes shared by the recipes of one run, in the order they run."""

    def __init__(self, recipes: Sequence[Recipe]) -> None:
        self.order = [recipe.name for recipe in recipes]
        users: dict[str, list[int]] = {}
        for position, recipe in enumerate(recipes):
            for length in range(1, len(recipe.steps) + 1):
                users.setdefault(prefix_key(recipe, length), []).append(position)
        # A prefix is worth keeping only when a later recipe starts with it too; it is needed until its last user.
        self.last_user = {key: positions[-1] for key, positions in users.items() if len(positions) > 1}
        self.kept: dict[str, SharedPrefix] = {}

    def reuse(self, recipe: Recipe) -> Reused | None:
        """The longest prefix of ``recipe``'s steps an earlier recipe of the run applied, if any."""
        for length in range(len(recipe.steps), 0, -1):
            kept = self.kept.get(prefix_key(recipe, length))
            if kept is not None:
                records = [{**copy.deepcopy(record), "shared_with": kept.owner} for record in kept.records]
                return Reused(length, kept.model, records)
        return None

    def offer(self, recipe: Recipe, length: int, model: keras.Model, records: list[dict]) -> None:
        """Keep the model after ``recipe``'s first ``length`` steps when a later recipe starts the same way."""
        key = prefix_key(recipe, length)
        if key in self.last_user and key not in self.kept and self.last_user[key] > self.order.index(recipe.name):
            self.kept[key] = SharedPrefix(recipe.name, model, copy.deepcopy(records[:length]))

    def finished(self, recipe: Recipe) -> None:
        """Let go of the prefixes no recipe after ``recipe`` needs."""
        position = self.order.index(recipe.name)
        for key in [key for key in self.kept if self.last_user[key] <= position]:
            del self.kept[key]
