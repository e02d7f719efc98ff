// `drydock completion bash|zsh`: a completion script made from the command tree itself, so a
// command or option added anywhere completes without editing this file.
import type { Command } from 'commander';
import { action } from '../context.js';

interface Node {
  path: string;
  words: string[];
}

/** Every command path ('' for the root, 'node drain', …) with what may follow it. */
function walk(command: Command, path: string[] = [], into: Node[] = []): Node[] {
  const options = command.options.flatMap((o) => [o.long, o.short].filter((f): f is string => typeof f === 'string'));
  const globals = path.length > 0 ? [] : ['--help'];
  into.push({ path: path.join(' '), words: [...command.commands.map((c) => c.name()), ...options, ...globals] });
  for (const sub of command.commands) walk(sub, [...path, sub.name()], into);
  return into;
}

function bashScript(program: Command): string {
  const cases = walk(program)
    .map((n) => `    '${n.path}') words='${n.words.join(' ')}' ;;`)
    .join('\n');
  return `# bash completion for drydock: source <(drydock completion bash)
_drydock() {
  local cur path word words i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  path=""
  # The command path is the words so far that are subcommands (options and values are skipped).
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    case "$word" in -*) continue ;; esac
    if _drydock_words "\${path:+$path }$word" >/dev/null; then path="\${path:+$path }$word"; fi
  done
  COMPREPLY=($(compgen -W "$(_drydock_words "$path")" -- "$cur"))
}
_drydock_words() {
  local words
  case "$1" in
${cases}
    *) return 1 ;;
  esac
  printf '%s\\n' "$words"
}
complete -o default -F _drydock drydock
`;
}

function zshScript(program: Command): string {
  return `#compdef drydock
# zsh completion for drydock: source <(drydock completion zsh)
autoload -U +X bashcompinit && bashcompinit
${bashScript(program)}`;
}

export function registerCompletionCommand(program: Command): void {
  program
    .command('completion <shell>')
    .description('print a shell completion script (bash or zsh): source <(drydock completion bash)')
    .action(
      action(async (shell: string) => {
        if (shell === 'bash') process.stdout.write(bashScript(program));
        else if (shell === 'zsh') process.stdout.write(zshScript(program));
        else throw new Error(`no completion for shell "${shell}"; use bash or zsh`);
      }),
    );
}
