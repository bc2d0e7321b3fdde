"""tfpcourse: the support package of an executable course on TensorFlow Probability.

The package is deliberately light to import: TensorFlow is loaded only when a helper needs it
(``tfpcourse.device.setup()`` is the usual first call of a notebook). Modules, one concept each:

``stack``      the supported TensorFlow versions, the stack of the stored outputs, what to install
``config``     run profiles (``full`` / ``smoke``) and environment settings
``device``     quiet, GPU-ready TensorFlow start-up and the distribution strategy
``seeding``    reproducible randomness, including TFP stateless seeds
``data``       MNIST-family loaders with pinned checksums, cache and mirror
``pipelines``  ``tf.data`` input pipelines (scaling, binarisation, shuffling, batching)
``toy2d``      2-D toy densities for the flow chapters
``distributions``  shape reports and Monte Carlo KL estimates
``bijectors``  a checker for any bijector (round trip, log-det against autodiff, shapes)
``training``   the one training loop (compiled step, several devices, mixed precision,
               checkpoints, early stopping) and maximum-likelihood fitting of distributions
``flows``      MAF, IAF and RealNVP builders in a container that keeps variables tracked
``networks``   a VAE's encoder ``x -> q(z | x)`` and decoder ``z -> p(x | z)``
``priors``     priors over latents: the standard Normal and a learnable mixture
``elbo``       the ELBO's terms and the importance-weighted bound, per example
``mmd``        the maximum mean discrepancy with a Gaussian kernel
``vae``        the VAE model (ELBO or MMD-VAE loss) and how to score it (IWAE NLL, posterior
               moments); re-exports the names of the four modules above
``plot``       image grids, 1-D / 2-D densities, latent spaces and training curves
``graphs``     static pictures of TensorFlow graphs
``timing``     honest timings for notebooks and benchmarks
``notebooks``  pairing, execution and nbval bookkeeping for the course's notebooks
``check``      plain-words answer checks for the exercises
``classroom``  student versions of the notebooks (solutions replaced by stubs)
``doctor``     checks a student's environment and says what to fix
``book``       builds the course website (Jupyter Book) and checks its table of contents
"""

__version__ = "0.1.0"
__all__ = ["__version__"]

# One line on stderr when the installed TensorFlow stack is not the one the stored outputs were
# made with (silent on that stack; it reads package metadata only, never imports TensorFlow).
from tfpcourse import stack as _stack

_stack.notice_once()
