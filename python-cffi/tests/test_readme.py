"""The Python examples of python-cffi/README.md and of the repository's
README.md run as written."""

import os
import re

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("OBJ_REPO_ROOT") or os.path.join(HERE, "..", "..")
READMES = [os.path.join(ROOT, "python-cffi", "README.md"), os.path.join(ROOT, "README.md")]


def blocks():
    found = []
    for readme in READMES:
        if os.path.isfile(readme):
            with open(readme, encoding="utf-8") as f:
                found += [(readme, code) for code in re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)]
    return found


@pytest.mark.skipif(not blocks(), reason="README not found")
@pytest.mark.parametrize("readme,code", blocks())
def test_readme_example(readme, code, in_tmp):
    exec(compile(code, readme, "exec"), {"__name__": "readme_example"})
