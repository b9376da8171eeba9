"""The Python examples of python-cffi/README.md run as written."""

import os
import re

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(os.environ.get("OBJ_REPO_ROOT") or os.path.join(HERE, "..", ".."), "python-cffi", "README.md")


def blocks():
    if not os.path.isfile(README):
        return []
    with open(README, encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


@pytest.mark.skipif(not blocks(), reason="README not found")
@pytest.mark.parametrize("code", blocks())
def test_readme_example(code, in_tmp):
    exec(compile(code, README, "exec"), {"__name__": "readme_example"})
