"""SQL constructs spelled differently per backend, compiled by SQLAlchemy's ``@compiles``.

The generic spelling is here; a backend that differs registers its own in its module.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class as_double(FunctionElement[float]):
    """CAST(x AS DOUBLE), as each backend wants it."""

    type = sa.Double()
    inherit_cache = True


@compiles(as_double)
def _double(element: as_double, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS DOUBLE PRECISION)"


class as_real(FunctionElement[float]):
    """A float column as selected: the column itself, or a CAST where the driver needs one."""

    type = sa.Double()
    inherit_cache = True
    name = "as_real"


@compiles(as_real)
def _as_real(element: as_real, compiler: SQLCompiler, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))
