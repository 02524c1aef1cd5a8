"""Every model starts from a seeded, stated initialisation, the same in any process."""
import hashlib
import subprocess
import sys

import pytest
import torch

from book.conv_vae import ConvAutoencoder, ConvConfig, ConvVAE
from book.torch_mlp_vae import PYTORCH_EXAMPLES, TorchVAE

BUILD = """
import hashlib, sys, torch
from book.conv_vae import ConvAutoencoder, ConvConfig, ConvVAE
from book.torch_mlp_vae import PYTORCH_EXAMPLES, TorchVAE
torch.rand(int(sys.argv[1]))  # whatever ran before must not matter
for model in (ConvVAE(ConvConfig(z_dim=2), seed=3), ConvAutoencoder(seed=3),
              ConvVAE(ConvConfig(dense=8), seed=3), TorchVAE(PYTORCH_EXAMPLES, seed=3)):
    digest = hashlib.sha256()
    for name, value in model.state_dict().items():
        digest.update(name.encode() + value.numpy().tobytes())
    print(digest.hexdigest())
"""


def weights_in_a_fresh_process(draws_before: int) -> list[str]:
    result = subprocess.run([sys.executable, "-c", BUILD, str(draws_before)],
                            capture_output=True, text=True, check=True)
    return result.stdout.split()


def test_the_same_seed_gives_the_same_weights_in_two_fresh_processes():
    first, second = weights_in_a_fresh_process(1), weights_in_a_fresh_process(1000)
    assert len(first) == 4 and first == second


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                  b.state_dict().values()))


@pytest.mark.parametrize("build", [lambda seed: ConvVAE(seed=seed),
                                   lambda seed: ConvAutoencoder(seed=seed),
                                   lambda seed: TorchVAE(seed=seed)])
def test_seed_sets_the_weights_and_leaves_the_global_generator_alone(build):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = build(0)
    assert torch.equal(torch.rand(3), expected)  # building drew nothing from the global one
    assert same_weights(a, build(0))
    assert not same_weights(a, build(1))


def test_the_autoencoder_shares_the_vae_s_seeded_layers_but_its_code():
    vae, auto = ConvVAE(seed=5), ConvAutoencoder(seed=5)
    assert torch.equal(vae.encoder[0].weight, auto.encoder[0].weight)
    assert auto.encoder[-1].out_features == ConvConfig().z_dim  # one number per dimension
    assert vae.encoder[-1].out_features == 2 * ConvConfig().z_dim


@pytest.mark.parametrize("seed", [0.5, "0", True])
def test_a_seed_must_be_an_integer(seed):
    with pytest.raises(TypeError, match="seed must be an int"):
        ConvVAE(seed=seed)
