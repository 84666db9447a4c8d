"""The shared log-mel front end, its normalisation statistics and Griffin-Lim inversion."""

from uniwav.features.mel import LogMel, mel_filterbank  # noqa: F401
from uniwav.features.griffin_lim import GriffinLim, spectral_convergence  # noqa: F401
