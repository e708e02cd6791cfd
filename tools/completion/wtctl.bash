# bash completion for wtctl. The commands and their flags are read from
# `wtctl --help` when completing, so they are always those of the installed
# wtctl. Installed as share/bash-completion/completions/wtctl.

# Prints the commands of `wtctl --help`, one per line.
_wtctl_commands() {
  "$1" --help 2>/dev/null | awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { exit }'
}

# Prints the flags of command $2 from its usage line in `wtctl --help`.
_wtctl_command_flags() {
  "$1" --help 2>/dev/null |
    awk -v cmd="$2" '/^Commands:/ { on = 1; next } on && $1 == cmd { print }' |
    grep -o -- '--[a-z][a-z-]*' | sort -u
  echo --json
}

_wtctl() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
  local wtctl=${COMP_WORDS[0]} i command=
  case $prev in
    --state-dir)
      COMPREPLY=($(compgen -d -- "$cur"))
      return
      ;;
    --socket)
      COMPREPLY=($(compgen -f -- "$cur"))
      return
      ;;
  esac
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in
      --state-dir | --socket) ((i++)) ;;
      -*) ;;
      *)
        command=${COMP_WORDS[i]}
        break
        ;;
    esac
  done
  if [[ -z $command ]]; then
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W "--state-dir --socket --json --help" -- "$cur"))
    else
      COMPREPLY=($(compgen -W "$(_wtctl_commands "$wtctl")" -- "$cur"))
    fi
    return
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(_wtctl_command_flags "$wtctl" "$command")" -- "$cur"))
  fi
}

complete -F _wtctl wtctl
