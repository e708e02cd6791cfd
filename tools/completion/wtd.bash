# bash completion for wtd. The options are read from `wtd --help` when
# completing, so they are always those of the installed wtd. Installed as
# share/bash-completion/completions/wtd.

# Prints every long option of `wtd --help`, one per line.
_wtd_options() {
  "$1" --help 2>/dev/null | grep -o -- '^  \(-[a-z] \[ \)\?--[a-z][a-z-]*' | grep -o -- '--[a-z-]*'
}

_wtd() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
  case $prev in
    --config | --socket | --pid-file | --exec-shim)
      COMPREPLY=($(compgen -f -- "$cur"))
      return
      ;;
    --repo | --state-dir | --worktrees)
      COMPREPLY=($(compgen -d -- "$cur"))
      return
      ;;
    --log-level)
      COMPREPLY=($(compgen -W "trace debug info warn error" -- "$cur"))
      return
      ;;
    --log-format)
      COMPREPLY=($(compgen -W "text json" -- "$cur"))
      return
      ;;
  esac
  COMPREPLY=($(compgen -W "$(_wtd_options "${COMP_WORDS[0]}")" -- "$cur"))
}

complete -F _wtd wtd
