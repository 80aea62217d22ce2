# shellcheck shell=bash
# Shared by scripts/coco/install and scripts/coco/env (sourced, not run): where the pycocotools
# venv lives and what goes in it.
# shellcheck disable=SC2034  # used by the scripts that source this file
COCO_VENV=${FLOW_PYCOCOTOOLS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/flow/pycocotools-venv}
# What the cross-check needs; the install stamp records this list, so a change reinstalls.
# shellcheck disable=SC2034
COCO_PACKAGES=(pycocotools numpy)
