"""gradtx: composable gradient transformations for JAX, where an optimizer is a value.

    >>> import gradtx as gx
    >>> opt = gx.adam(1e-3)            # a pytree: its hyperparameters are leaves

Every public name lives here, once. Submodules are implementation detail.
"""

from gradtx.core.base import EmptyState as EmptyState
from gradtx.core.base import GradientTransformation as GradientTransformation
from gradtx.core.base import ScaleByScheduleState as ScaleByScheduleState
from gradtx.core.base import StatelessTransformation as StatelessTransformation
from gradtx.core.base import apply_updates as apply_updates
from gradtx.core.hyperparams import FunctionSchedule as FunctionSchedule
from gradtx.core.hyperparams import Schedule as Schedule
from gradtx.core.module import Module as Module
from gradtx.core.module import hyper as hyper
from gradtx.core.module import static as static
from gradtx.optimizers.adam_family import adam as adam
from gradtx.optimizers.adam_family import adamax as adamax
from gradtx.optimizers.adam_family import adamaxw as adamaxw
from gradtx.optimizers.adam_family import adamw as adamw
from gradtx.optimizers.adam_family import amsgrad as amsgrad
from gradtx.optimizers.adam_family import nadam as nadam
from gradtx.optimizers.adam_family import nadamw as nadamw
from gradtx.optimizers.classic import adadelta as adadelta
from gradtx.optimizers.classic import adagrad as adagrad
from gradtx.optimizers.classic import rmsprop as rmsprop
from gradtx.optimizers.classic import sgd as sgd
from gradtx.optimizers.registry import OPTIMIZERS as OPTIMIZERS
from gradtx.optimizers.registry import OptimizerInfo as OptimizerInfo
from gradtx.problems.functions import Problem as Problem
from gradtx.problems.functions import beale as beale
from gradtx.problems.functions import ill_conditioned_quadratic as ill_conditioned_quadratic
from gradtx.problems.functions import quadratic as quadratic
from gradtx.problems.functions import radial_polynomial as radial_polynomial
from gradtx.problems.functions import rosenbrock as rosenbrock
from gradtx.problems.stochastic import init_mlp as init_mlp
from gradtx.problems.stochastic import mlp_apply as mlp_apply
from gradtx.problems.stochastic import mlp_regression as mlp_regression
from gradtx.problems.stochastic import noisy_quadratic as noisy_quadratic
from gradtx.problems.runs import RunResult as RunResult
from gradtx.problems.runs import conditioning_experiment as conditioning_experiment
from gradtx.problems.runs import steps_to_tolerance as steps_to_tolerance
from gradtx.schedules.decay import cosine_decay_schedule as cosine_decay_schedule
from gradtx.schedules.decay import exponential_decay as exponential_decay
from gradtx.schedules.decay import inverse_time_decay as inverse_time_decay
from gradtx.schedules.join import join_schedules as join_schedules
from gradtx.schedules.join import sgdr_schedule as sgdr_schedule
from gradtx.schedules.join import warmup_cosine_decay_schedule as warmup_cosine_decay_schedule
from gradtx.schedules.join import warmup_exponential_decay_schedule as warmup_exponential_decay_schedule
from gradtx.schedules.piecewise import cosine_onecycle_schedule as cosine_onecycle_schedule
from gradtx.schedules.piecewise import linear_onecycle_schedule as linear_onecycle_schedule
from gradtx.schedules.piecewise import piecewise_constant_schedule as piecewise_constant_schedule
from gradtx.schedules.piecewise import piecewise_interpolate_schedule as piecewise_interpolate_schedule
from gradtx.schedules.polynomial import constant_schedule as constant_schedule
from gradtx.schedules.polynomial import linear_schedule as linear_schedule
from gradtx.schedules.polynomial import polynomial_schedule as polynomial_schedule
from gradtx.sweeps.pbt import PBTResult as PBTResult
from gradtx.sweeps.pbt import pbt as pbt
from gradtx.sweeps.results import SweepResult as SweepResult
from gradtx.sweeps.runner import sweep as sweep
from gradtx.sweeps.space import Dimension as Dimension
from gradtx.sweeps.space import Space as Space
from gradtx.sweeps.space import choice as choice
from gradtx.sweeps.space import grid as grid
from gradtx.sweeps.space import log_uniform as log_uniform
from gradtx.sweeps.space import uniform as uniform
from gradtx.transforms.adam import ScaleByAdamState as ScaleByAdamState
from gradtx.transforms.adam import ScaleByAmsgradState as ScaleByAmsgradState
from gradtx.transforms.adam import scale_by_adam as scale_by_adam
from gradtx.transforms.adam import scale_by_adamax as scale_by_adamax
from gradtx.transforms.adam import scale_by_amsgrad as scale_by_amsgrad
from gradtx.transforms.adaptive import ScaleByAdaDeltaState as ScaleByAdaDeltaState
from gradtx.transforms.adaptive import ScaleByRmsState as ScaleByRmsState
from gradtx.transforms.adaptive import ScaleByRssState as ScaleByRssState
from gradtx.transforms.adaptive import scale_by_adadelta as scale_by_adadelta
from gradtx.transforms.adaptive import scale_by_rms as scale_by_rms
from gradtx.transforms.adaptive import scale_by_rss as scale_by_rss
from gradtx.transforms.adaptive import scale_by_stddev as scale_by_stddev
from gradtx.transforms.basic import identity as identity
from gradtx.transforms.basic import scale as scale
from gradtx.transforms.basic import scale_by_learning_rate as scale_by_learning_rate
from gradtx.transforms.basic import scale_by_schedule as scale_by_schedule
from gradtx.transforms.basic import scale_by_sign as scale_by_sign
from gradtx.transforms.basic import set_to_zero as set_to_zero
from gradtx.transforms.basic import stateless as stateless
from gradtx.transforms.basic import stateless_with_tree_map as stateless_with_tree_map
from gradtx.transforms.clipping import clip as clip
from gradtx.transforms.clipping import clip_by_block_rms as clip_by_block_rms
from gradtx.transforms.clipping import clip_by_global_norm as clip_by_global_norm
from gradtx.transforms.combine import chain as chain
from gradtx.transforms.combine import named_chain as named_chain
from gradtx.transforms.momentum import BiasCorrectionState as BiasCorrectionState
from gradtx.transforms.momentum import EmaState as EmaState
from gradtx.transforms.momentum import TraceState as TraceState
from gradtx.transforms.momentum import bias_correction as bias_correction
from gradtx.transforms.momentum import ema as ema
from gradtx.transforms.momentum import scale_by_momentum as scale_by_momentum
from gradtx.transforms.momentum import trace as trace
from gradtx.transforms.weight_decay import add_decayed_weights as add_decayed_weights
from gradtx.wrappers.masked import MaskedNode as MaskedNode
from gradtx.wrappers.masked import MaskedState as MaskedState
from gradtx.wrappers.masked import masked as masked

__version__ = "0.1.0"
