"""Reward rules (DESIGN §5): the emission schedule, novelty, and the epoch splits."""

from choir.rewards.rules import (
    NOVELTY_ONE_PPM,
    emitted,
    epoch_budget,
    novelty_ppm,
    prior_budget,
    split_new_message_rewards,
    split_prior_rewards,
)

__all__ = [
    "NOVELTY_ONE_PPM",
    "emitted",
    "epoch_budget",
    "novelty_ppm",
    "prior_budget",
    "split_new_message_rewards",
    "split_prior_rewards",
]
