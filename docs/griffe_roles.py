"""A Griffe extension for the API reference: the Sphinx roles vggedge's docstrings use for readers of the code
(``:class:`~vggedge.core.result.Result```) become plain code spans (`Result`) instead of raw text on the site,
doctest directives (``# doctest: +SKIP``) are dropped from the examples, and a default written
``defaults.CALIBRATION_SAMPLES`` in a signature is shown as its value."""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:class|func|mod|data|attr|meth|exc|obj):`(~?)([^`]+)`")
DIRECTIVE = re.compile(r"\s*#\s*doctest:[^\n]*")


def plain(text: str) -> str:
    def name(match: re.Match) -> str:
        short, target = match.groups()  # `~` asks for the last component only, as Sphinx shows it
        return f"`{target.rsplit('.', 1)[-1] if short else target}`"

    return DIRECTIVE.sub("", ROLE.sub(name, text))


class PlainRoles(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs: object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain(obj.docstring.value)
        if obj.is_function:
            for parameter in obj.parameters:  # `defaults.RUNS` in a signature says less than its value, 30
                if str(parameter.default).startswith("defaults."):
                    from vggedge.core import defaults

                    value = getattr(defaults, str(parameter.default).split(".", 1)[1], None)
                    if value is not None:
                        parameter.default = repr(value)
