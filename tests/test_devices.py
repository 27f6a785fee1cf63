"""The one device picker."""

import pytest
import torch

from di4c.devices import resolve_device


def test_auto_and_cpu():
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device().type == want
    assert resolve_device("auto").type == want
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "cuda:-1", "mps", "", "cpu:0", None])
def test_anything_else_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"'auto', 'cpu', 'cuda' or 'cuda:<i>'"):
        resolve_device(bad)


def test_cuda_is_checked():
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        assert resolve_device("cuda") == torch.device("cuda")
        assert resolve_device(f"cuda:{n - 1}") == torch.device(f"cuda:{n - 1}")
        with pytest.raises(ValueError, match=f"has {n} CUDA device"):
            resolve_device(f"cuda:{n}")
    else:
        for name in ("cuda", "cuda:0"):
            with pytest.raises(
                ValueError, match="CUDA is not available.*'cpu' or 'auto'"
            ):
                resolve_device(name)
