#!/usr/bin/env bash
# Make profiles/slurm your `slurm` Snakemake profile, so `snakemake --profile slurm ...` works from
# the repository root. It installs a link to the repository's folder (your edits there follow)
# in your configuration folder, and never replaces a `slurm` profile that you or your site
# already have: then it says where that profile is and what to merge into it.
#
# Snakemake looks a profile name up in the current directory, then in
# ${XDG_CONFIG_HOME:-~/.config}/snakemake, then in ${XDG_CONFIG_DIRS%%:*:-/etc/xdg}/snakemake.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd -P)
source_dir="$repo/profiles/slurm"
config_home=${XDG_CONFIG_HOME:-}
[ -n "${config_home// /}" ] || config_home="$HOME/.config"
config_dirs=${XDG_CONFIG_DIRS:-}
[ -n "${config_dirs// /}" ] || config_dirs=/etc/xdg
user_profile="$config_home/snakemake/slurm"
site_profile="${config_dirs%%:*}/snakemake/slurm"

what_to_merge() {
  cat <<EOF
Your profile works with this workflow as it is: the training jobs' GPUs, tasks, nodes, memory
and time come from the workflow itself. Worth merging from $source_dir/config.yaml:
  executor: slurm, retries, latency-wait, rerun-incomplete, and in default-resources
  slurm_extra: "'--signal=TERM@180'" (training checkpoints before the time limit).
Or use the project's profile without installing it: snakemake --profile profiles/slurm ...
EOF
}

# Already ours: a link to this repository's profile (a second run changes nothing).
if [ -L "$user_profile" ] && [ "$(readlink -f "$user_profile")" = "$source_dir" ]; then
  echo "the slurm profile is already installed: $user_profile -> $source_dir"
  exit 0
fi
if [ -e "$user_profile" ] || [ -L "$user_profile" ]; then
  echo "you already have a slurm profile: $user_profile (left as it is)"
  what_to_merge
  exit 0
fi
if [ -e "$site_profile" ]; then
  echo "your site already has a slurm profile: $site_profile (not shadowing it)"
  what_to_merge
  exit 0
fi
mkdir -p "$(dirname "$user_profile")"
ln -s "$source_dir" "$user_profile"
echo "installed: $user_profile -> $source_dir"
echo "edit slurm_partition and slurm_account in $source_dir/config.yaml, then from $repo:"
echo "  snakemake --profile slurm reproduce_all"
