"""Deliberately WRONG code: the faults of the appendix "When a VAE misbehaves", one by one.

Each function or class below reproduces a mistake that people make when they write a VAE, so
that the appendix can run it beside the book's correct code and show what it does. Its
docstring states the fault, the correct form (and where the book derives it) and the check
that catches it; ``tests/test_mistakes.py`` proves that every check fails on its variant and
passes on the book's code. Do not copy code from here.

This module sits on top of the book's layers: it imports the rest of ``book/``, and nothing in
``book/`` imports it but ``book.exercises``, whose checkers name these faults in their hints.
``VariantVAE`` with no variant, its ``book_model`` and the checks at the end (as the appendix
applies them) are correct code; everything else is wrong on purpose.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from book.checks import mean_and_standard_error
from book.conv_vae import ConvConfig, ConvVAE
from book.data import require_binary
from book.gaussian import (_xp, bounded_logvar, gaussian_log_density, kl_to_standard_normal,
                           reparameterize, standard_normal_log_density)
from book.history import ELBOTerms, Losses
from book.latent import aggregate_log_density
from book.numpy_vae import VAE, ForwardPass
from book.seeding import initial_weights
from book.torch_mlp_vae import MLPConfig, TorchVAE

Array = Any  # a numpy.ndarray or a torch.Tensor


# --- The book's MLP VAE with one part swapped -------------------------------------------------


class VariantVAE(TorchVAE):
    """The book's MLP VAE (``TorchVAE``) with one of its parts replaced, all else equal.

    ``sample(mu, logvar, eps)`` draws z, ``kl(mu, logvar)`` is the KL term, ``recon(x, logits)``
    the reconstruction term (None: the book's, ``-log_likelihood``) and ``logvar(raw)`` turns
    the encoder's raw output into log sigma^2. With the defaults it computes exactly what
    ``TorchVAE`` computes. It follows ``book.train``'s protocol, so the book's one loop trains
    it, and ``train.evaluate`` then reports what its loss says; ``book_model`` scores the same
    weights as the book would.
    """

    def __init__(self, config: MLPConfig, *, seed: int = 0,
                 sample: Callable = reparameterize, kl: Callable = kl_to_standard_normal,
                 recon: Callable | None = None, logvar: Callable = bounded_logvar):
        super().__init__(config, seed=seed)
        self.sample, self.kl, self.recon, self.to_logvar = sample, kl, recon, logvar

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean and log-variance of q(z | x), the latter from ``logvar``."""
        mu, raw = self.head(self.act(self.enc(x))).chunk(2, dim=-1)
        return mu, self.to_logvar(raw)

    def forward(self, x: torch.Tensor, eps: torch.Tensor) -> ELBOTerms:
        """Each example's two loss terms, as the variant computes them."""
        mu, logvar = self.encode(x)
        z = self.sample(mu, logvar, eps)
        if self.recon is None:
            recon = -self.log_likelihood(x, z)
        else:
            recon = self.recon(x, self.decode(z))
        return ELBOTerms(recon, self.kl(mu, logvar))

    def book_model(self) -> TorchVAE:
        """A ``TorchVAE`` with the same weights: the trained model, scored correctly."""
        model = TorchVAE(self.config)
        model.load_state_dict({k: v for k, v in self.state_dict().items()
                               if k in model.state_dict()})
        return model.to(next(self.parameters()).device)


# --- The loss: reductions and normalizations --------------------------------------------------


def pixel_mean_reconstruction(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """WRONG: the Bernoulli reconstruction term averaged over the D pixels, the KL still summed.

    What ``F.binary_cross_entropy(..., reduction="mean")`` plus a summed KL computes. It divides
    the reconstruction by D = 784, which is the ELBO with the KL weighted 784 times
    (beta = 784): q(z | x) is pushed onto the prior, the code carries nothing, and the decoder
    draws one blurry average digit.
    Correct: sum over the pixels (``TorchVAE.log_likelihood``; chapter 2, "Sums, not means").
    Caught by: the KL of each latent dimension (``latent.kl_per_dimension``) and the count of
    active units (``latent.active_units``), all near zero.
    """
    require_binary(x)
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").mean(-1)


def batch_sum_loss(terms: ELBOTerms) -> Array:
    """WRONG as a number to report: the negative ELBO summed over the minibatch.

    The minibatch's sum grows with its size B, so the printed loss changes with the batch size
    (with Adam the training barely changes: it ignores the loss's scale).
    Correct: the minibatch mean, J = -(1/B) sum_b ELBO(x_b) (``ELBOTerms.loss``; chapter 1).
    Caught by: the loss of the same examples in batches of another size.
    """
    return (terms.recon + terms.kl).sum()


def dataset_normalized_loss(terms: ELBOTerms, n_data: int) -> Array:
    """WRONG: the reconstruction averaged over the minibatch, the KL summed over it and divided
    by the size N of the data set (the scaling of a KL over *weights*, in Bayes by backprop,
    carried over to the per-example KL of a VAE).

    Its minibatch loss is mean_b [recon_b + (B / N) KL_b]: the ELBO with beta = B / N, 1/600
    for B = 100 on full MNIST, so the KL hardly counts and the codes leave the prior
    (``dataset_normalized_beta`` gives the beta that ``train.train`` trains it with).
    Correct: both terms per example, averaged over the minibatch (``ELBOTerms.loss``).
    Caught by: the loss of the same examples on a data set of another size; the share of
    prior samples in the aggregate posterior's holes (``hole_share``).
    """
    return terms.recon.mean() + terms.kl.sum() / n_data


def dataset_normalized_beta(batch_size: int, n_data: int) -> float:
    """The KL weight that ``dataset_normalized_loss`` amounts to: B / N."""
    return batch_size / n_data


# --- The KL to the prior ----------------------------------------------------------------------


def kl_wrong_sign(mu: Array, logvar: Array) -> Array:
    """WRONG: 1/2 sum(1 + log sigma^2 - mu^2 - sigma^2), which is minus the KL.

    It is the term as it appears *in the ELBO*; added to a loss that is minimized, it pushes
    q(z | x) away from the prior, and the loss falls without bound, below zero.
    Correct: KL = 1/2 sum(sigma^2 + mu^2 - 1 - log sigma^2) >= 0
    (``gaussian.kl_to_standard_normal``; chapter 1, "The KL to the prior in closed form").
    Caught by: a Monte Carlo KL (``kl_standard_errors``); and a negative loss for binary data,
    whose -log p(x) cannot be below 0.
    """
    xp = _xp(mu)
    return 0.5 * xp.sum(1.0 + logvar - mu**2 - xp.exp(logvar), axis=-1)


def kl_exp_variance(mu: Array, logvar: Array) -> Array:
    """WRONG: the KL with exp(sigma^2) where sigma^2 = exp(log sigma^2) belongs.

    The code's ``logvar.exp()`` already *is* sigma^2; exponentiating the variance again gives
    a KL too large at every sigma, by (exp(sigma^2) - sigma^2) / 2 > 1/2 nat per dimension (at
    sigma = 1 too), pulls an idle dimension to sigma^2 = W(1) = 0.567 instead of 1, and
    overflows float32 once log sigma^2 passes 4.5.
    Correct: 1/2 sum(sigma^2 + mu^2 - 1 - log sigma^2) (``gaussian.kl_to_standard_normal``).
    Caught by: a Monte Carlo KL (``kl_standard_errors``).
    """
    xp = _xp(mu)
    return 0.5 * xp.sum(xp.exp(xp.exp(logvar)) + mu**2 - 1.0 - logvar, axis=-1)


def kl_for_log_std(mu: Array, logvar: Array) -> Array:
    """WRONG: the KL of an encoder whose output is log sigma, used with one whose output is
    log sigma^2 (the sampler takes sigma = exp(out / 2), the KL sigma = exp(out)).

    The two halves of the loss then disagree about q: the KL charges for a variance of
    exp(2 out) while z is drawn with exp(out).
    Correct: one convention throughout; the book's encoders output log sigma^2
    (``gaussian.kl_to_standard_normal`` with ``gaussian.reparameterize``).
    Caught by: a Monte Carlo KL with the model's own sampler (``kl_standard_errors``).
    """
    xp = _xp(mu)
    return 0.5 * xp.sum(xp.exp(2 * logvar) + mu**2 - 1.0 - 2 * logvar, axis=-1)


# --- The sample and the log-variance ----------------------------------------------------------


def reparameterize_with_variance(mu: Array, logvar: Array, eps: Array) -> Array:
    """WRONG: z = mu + sigma^2 eps, the variance where the standard deviation belongs.

    The same as ``std = exp(logvar)``: the log-variance taken for log sigma. The draws have
    variance sigma^4, not the sigma^2 the KL charges for: narrower when sigma < 1, so the
    loss reports a better ELBO than the model has. At sigma = 1 (log sigma^2 = 0, where a new
    encoder starts) the two agree, which is why it goes unnoticed.
    Correct: z = mu + sigma eps with sigma = exp(log sigma^2 / 2) (``gaussian.reparameterize``;
    chapter 1, "Gradients through a sample").
    Caught by: a Monte Carlo KL that draws z with this sampler (``kl_standard_errors``); in a
    hand-written backward pass, the finite-difference gradient check
    (``VarianceSampledVAE``).
    """
    return mu + _xp(mu).exp(logvar) * eps


class VarianceSampledVAE(VAE):
    """WRONG: chapter 2's NumPy VAE drawing z = mu + sigma^2 eps in its forward pass while its
    backward pass differentiates z = mu + sigma eps (dz / dlog sigma^2 = sigma eps / 2).

    A sampler changed without its derivative, or the reverse. (It hands ``VAE.forward`` the
    noise sigma eps, so that z = mu + sigma (sigma eps).)
    Correct: ``numpy_vae.VAE``, whose forward and backward passes agree.
    Caught by: the finite-difference gradient check (``numpy_vae.gradient_check``): every
    encoder gradient is wrong, every decoder gradient right.
    """

    def forward(self, x: np.ndarray, eps: np.ndarray) -> ForwardPass:
        """``VAE.forward`` with z = mu + sigma^2 eps."""
        _, logvar = self.encode(x)
        return super().forward(x, eps * np.exp(0.5 * logvar))


def unbounded_logvar(raw: Array) -> Array:
    """WRONG: the encoder's raw output used as log sigma^2 as it is, with no bound.

    One large step sends it to tens or hundreds: sigma^2 = exp(log sigma^2) and the KL grow
    exponentially (the loss explodes), and beyond 88.7 exp overflows float32: inf, then NaN
    in the gradients and every weight.
    Correct: ``gaussian.bounded_logvar``, 8 tanh(raw / 8), in every encoder of the book
    (chapter 3); and a learning rate the model can take.
    Caught by: ``history.Divergence``, which both training loops call on every minibatch: it
    raises ``TrainingDiverged`` before the step, at the first loss that has exploded or is
    not finite.
    """
    return raw


# --- The likelihood ---------------------------------------------------------------------------


def bernoulli_on_grey(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """WRONG: the Bernoulli cross-entropy of gray levels x in [0, 1], reported in nats.

    It trains and returns a number, but not the log-probability of any data: it is the
    expected Bernoulli log-likelihood over the binarizations of x, and as a function of a
    continuous x it does not integrate to one. A model copying the gray levels scores the sum
    of their binary entropies, below anything a model of binary digits can reach.
    Correct: a Bernoulli likelihood of binarized digits (``data.observe(..., "binary")``,
    chapter 2), or a Gaussian decoder on dequantized gray levels (chapter 3).
    Caught by: the likelihood's domain, ``data.require_binary``, which every Bernoulli path of
    the book calls (and ``train.observation_kind``, which refuses gray observations).
    """
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def mse_reconstruction(x: torch.Tensor, mean: torch.Tensor, weight: float) -> torch.Tensor:
    """WRONG as a likelihood: ``weight`` times the squared error, summed over the pixels.

    It is -log N(x; mean, sigma_x^2) with sigma_x = 1 / sqrt(2 weight), up to a constant: a
    Gaussian decoder whose sigma_x was fixed by the choice of weight (``mse_sigma``). The
    squared error summed over the pixels (``reduction="sum"``, weight 1) means sigma_x = 0.71
    on gray levels in [0, 1], noise larger than the digits' contrast: reconstructions are
    nearly free to be wrong, the KL wins, and all is blurry. ``F.mse_loss``'s default mean
    over the pixels is weight 1 / D and far worse (``mse_mean_reconstruction``). With sigma_x
    fixed, a KL weighted by beta trains what the plain ELBO trains with sigma_x^2 times beta.
    Correct: a Gaussian decoder that learns sigma_x, with a floor (``ConvConfig(likelihood=
    "gaussian")``, chapter 3), scored as a density in bits per dimension.
    Caught by: the likelihood's scale: its bits per dimension on dequantized gray levels
    (``conv_vae.bits_per_dimension``) are worse than the uniform density's 8.
    """
    return weight * ((x - mean) ** 2).flatten(1).sum(-1)


def mse_mean_reconstruction(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """WRONG as a likelihood: ``F.mse_loss(mean, x)`` as most code writes it, whose default
    ``reduction="mean"`` averages the squared error over the D pixels (and the minibatch).

    Per example, the squared error averaged over the pixels; its minibatch mean is
    ``F.mse_loss(mean, x)``. Beside a KL averaged over the minibatch it is
    ``mse_reconstruction`` with weight 1 / D: sigma_x = sqrt(D / 2) = 19.8 for D = 784 (with
    the KL summed over the minibatch, the weight is B times smaller still). It is the pixel
    mean (``pixel_mean_reconstruction``) on top of the fixed variance: the squared error of a
    whole image in [0, 1] then varies by at most D / D = 1 nat, so no code worth more than one
    nat of KL can pay for itself, and its bits per dimension exceed 13 whatever it learns.
    Correct and caught by: as ``mse_reconstruction``.
    """
    return F.mse_loss(mean, x, reduction="none").flatten(1).mean(-1)


def mse_sigma(weight: float) -> float:
    """The sigma_x that ``mse_reconstruction`` with ``weight`` means: 1 / sqrt(2 weight)."""
    return 1 / math.sqrt(2 * weight)


class FixedSigmaVAE(ConvVAE):
    """WRONG: chapter 3's Gaussian conv-VAE with sigma_x fixed at ``sigma_x`` for every pixel,
    which is what a squared error times a weight trains (``mse_reconstruction``).

    The decoder's second output channel is ignored. Correct and caught by: as
    ``mse_reconstruction``.
    """

    def __init__(self, sigma_x: float, config: ConvConfig = ConvConfig(likelihood="gaussian"),
                 seed: int = 0):
        super().__init__(config, seed=seed)
        self.sigma_x = float(sigma_x)

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean of x from the decoder, and log sigma_x^2 the same constant everywhere."""
        mean, _ = self.decoder(z).chunk(2, dim=1)
        mean = torch.sigmoid(mean)
        return mean, torch.full_like(mean, 2 * math.log(self.sigma_x))


def without_floor() -> ConvConfig:
    """WRONG: a Gaussian decoder whose sigma_x may reach 0 (sigma_x = softplus(out)).

    On gray levels as they are, a pixel that is 0 in every image gets a density without bound
    as sigma_x shrinks: the loss goes negative and keeps falling, jumps from one evaluation to
    the next, and at sigma_x = 0 it is NaN.
    Correct: ``ConvConfig(likelihood="gaussian")``: sigma_x >= 1 / (256 sqrt(2 pi)), on
    dequantized data (chapter 3, "A floor on sigma_x" and "Without the floor").
    Caught by: the densest pixel's log-density above log 256, the most a density of
    dequantized gray levels can give one pixel when it knows its gray level
    (``densest_pixel``).
    """
    return ConvConfig(likelihood="gaussian", sigma_floor=0.0)


# --- Causes that are not bugs: a decoder that needs no code; dropout --------------------------


class StrongDecoderVAE(VariantVAE):
    """Not a bug but a cause of posterior collapse: a decoder that can model x without z.

    Each pixel's logit gets, besides the MLP decoder's output, a linear function of the pixels
    before it (an autoregressive decoder, as PixelCNN decoders are; here the simplest one, a
    fully visible sigmoid belief net). It explains most of each digit from the digit itself,
    so a code that costs KL buys little, and the optimizer switches the code off.
    The remedies: a weaker decoder, KL warm-up (``train.train(warmup_images=...)``), free
    bits. Caught by: ``latent.kl_per_dimension`` and ``latent.active_units``.
    """

    def __init__(self, config: MLPConfig, *, seed: int = 0, **variant: Callable):
        super().__init__(config, seed=seed, **variant)
        D = config.x_dim
        with initial_weights(seed):
            self.context = nn.Linear(D, D, bias=False)
        nn.init.zeros_(self.context.weight)  # starts as the plain MLP decoder
        self.register_buffer("before", torch.tril(torch.ones(D, D), diagonal=-1))

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z): Bernoulli pixels, each logit the MLP's plus pixel i's context."""
        require_binary(x)
        logits = self.decode(z) + F.linear(x, self.context.weight * self.before)
        x = x.expand_as(logits)
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


class DropoutVAE(VariantVAE):
    """Not a bug in itself: the MLP VAE with dropout (rate ``p``) after each hidden layer, as
    many examples have. It makes the model's mode matter: in training mode every call drops
    other units. Evaluated in training mode (``evaluate_in_training_mode``), it is a different,
    noisier model at every call.
    """

    def __init__(self, config: MLPConfig, *, seed: int = 0, p: float = 0.3,
                 **variant: Callable):
        super().__init__(config, seed=seed, **variant)
        self.drop = nn.Dropout(p)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x)'s mean and log-variance, with dropout after the hidden layer."""
        mu, raw = self.head(self.drop(self.act(self.enc(x)))).chunk(2, dim=-1)
        return mu, self.to_logvar(raw)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The Bernoulli logits, with dropout after the hidden layer."""
        return self.out(self.drop(self.act(self.dec(z))))


# --- Evaluation -------------------------------------------------------------------------------


@torch.no_grad()
def evaluate_in_training_mode(model: Any, x: torch.Tensor, *, seed: int = 0) -> Losses:
    """WRONG: the test losses computed with the model left in training mode.

    Dropout (and batch normalization) then act as in training: the number is that of a
    thinned, random network, worse than the model, and another call with the same seed gives
    another number.
    Correct: ``train.evaluate``, which switches the model to ``eval()`` and back.
    Caught by: evaluating twice with the same seed: the two numbers must be equal.
    """
    was_training = model.training
    model.train()  # as a model is left after training, when nobody calls eval()
    generator = torch.Generator(x.device).manual_seed(seed)
    eps = torch.randn(len(x), model.z_dim, generator=generator, device=x.device)
    terms = model(x, eps)
    model.train(was_training)
    return Losses.of(terms.recon.double().cpu().numpy(), terms.kl.double().cpu().numpy())


@torch.no_grad()
def one_z_nll(model: Any, x: torch.Tensor, *, seed: int = 0) -> np.ndarray:
    """WRONG as a reported log-likelihood: -log p(x) taken as the loss of one noisy z.

    That is the negative ELBO, estimated from a single draw: an upper bound on -log p(x), too
    high by the gap of q, and noisy. Papers report the importance-weighted estimate.
    Correct: ``iwae.iwae_bound`` with a large K (chapter 2, "Placing the number among
    published ones"; chapter 3, the IWAE curve), with K and the test images stated.
    Caught by: the IWAE curve: the estimate must have stopped moving as K grows.
    """
    generator = torch.Generator(x.device).manual_seed(seed)
    eps = torch.randn(len(x), model.z_dim, generator=generator, device=x.device)
    terms = model.eval()(x, eps)
    return (terms.recon + terms.kl).double().cpu().numpy()


# --- The checks as the appendix applies them (correct code) -----------------------------------


def kl_standard_errors(kl: Callable, sample: Callable, mu: np.ndarray, logvar: np.ndarray,
                       eps: np.ndarray) -> float:
    """How many standard errors a closed-form ``kl`` lies from its Monte Carlo estimate.

    Chapter 1's check (``vi.kl_monte_carlo`` with ``checks.mean_and_standard_error``), with the
    sampler under test drawing z = sample(mu, logvar, eps) for each row of eps and
    log q(z) - log p(z) averaged, q being N(mu, diag exp(logvar)). A correct pair lies within
    a few standard errors; a wrong KL or a wrong sampler, many.
    """
    z = sample(mu, logvar, eps)
    draws = gaussian_log_density(z, mu, logvar) - standard_normal_log_density(z)
    mean, se = mean_and_standard_error(draws)
    return float((kl(mu, logvar) - mean) / se)


def densest_pixel(model: ConvVAE, x: torch.Tensor) -> float:
    """The largest log-density a Gaussian decoder gives one pixel of x, decoded from the mean
    of q(z | x): above log 256 only when sigma_x is below the floor (chapter 3's check)."""
    with torch.no_grad():
        mean, logvar = model.decode(model.encode(x)[0])
        per_pixel = gaussian_log_density(x[..., None], mean[..., None], logvar[..., None])
    return float(per_pixel.max())


def hole_share(mu: np.ndarray, logvar: np.ndarray, z: np.ndarray,
               ratio: float = 0.1) -> float:
    """The share of points z (draws from the prior) where the aggregate posterior of the
    encoded data is below ``ratio`` times the prior: samples from its holes (chapter 5)."""
    log_q = aggregate_log_density(mu, logvar, z)
    return float(np.mean(log_q < standard_normal_log_density(z) + math.log(ratio)))
