/**
 * `unc completion bash|zsh|fish`: shell completion scripts generated from the command tree itself,
 * so a new command or option completes without anyone editing a script.
 */
import { UncError } from '@unc/core';
import { Command } from 'commander';
import { examples } from '../context.js';

/** Every command path ("" for unc itself, "market offer", …) with its subcommands and options. */
export interface CompletionNode {
  path: string;
  subcommands: string[];
  options: string[];
}

export function completionTree(program: Command): CompletionNode[] {
  const globals = program.options.flatMap((o) => [o.long, o.short].filter((f): f is string => !!f));
  const out: CompletionNode[] = [];
  const walk = (cmd: Command, path: string) => {
    const own = cmd.options.flatMap((o) => [o.long, o.short].filter((f): f is string => !!f));
    out.push({
      path,
      subcommands: cmd.commands.map((c) => c.name()),
      options: [...new Set([...own, ...(cmd === program ? [] : globals), '--help'])],
    });
    for (const c of cmd.commands) walk(c, path ? `${path} ${c.name()}` : c.name());
  };
  walk(program, '');
  return out;
}

function bashScript(tree: CompletionNode[]): string {
  const cases = (pick: (n: CompletionNode) => string[]) =>
    tree.map((n) => `    "${n.path}") echo "${pick(n).join(' ')}" ;;`).join('\n');
  return `# unc completion for bash: eval "$(unc completion bash)" (e.g. in ~/.bashrc)
_unc_subcommands() {
  case "$1" in
${cases((n) => n.subcommands)}
  esac
}
_unc_words() {
  case "$1" in
${cases((n) => [...n.subcommands, ...n.options])}
  esac
}
_unc() {
  # zsh (through bashcompinit) numbers arrays from 1; this function counts from 0 as bash does.
  [[ -n \${ZSH_VERSION-} ]] && setopt localoptions ksharrays
  local cur="\${COMP_WORDS[COMP_CWORD]}" path="" w i
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    if [[ " $(_unc_subcommands "$path") " == *" $w "* ]]; then path="\${path:+$path }$w"; fi
  done
  COMPREPLY=($(compgen -W "$(_unc_words "$path")" -- "$cur"))
}
complete -o default -F _unc unc
`;
}

function zshScript(tree: CompletionNode[]): string {
  return `# unc completion for zsh: eval "$(unc completion zsh)" (e.g. in ~/.zshrc)
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit
${bashScript(tree).split('\n').slice(1).join('\n')}`;
}

function fishScript(tree: CompletionNode[]): string {
  const lines = [
    '# unc completion for fish: unc completion fish > ~/.config/fish/completions/unc.fish',
    'function __unc_path',
    '  set -l words (commandline -opc)',
    '  set -l path ""',
    '  for w in $words[2..-1]',
    '    if contains -- $w (__unc_subcommands $path)',
    '      set path (string trim -- "$path $w")',
    '    end',
    '  end',
    '  echo $path',
    'end',
    'function __unc_subcommands',
    '  switch "$argv[1]"',
    ...tree
      .filter((n) => n.subcommands.length > 0)
      .flatMap((n) => [`    case "${n.path}"`, `      printf '%s\\n' ${n.subcommands.join(' ')}`]),
    '  end',
    'end',
  ];
  for (const n of tree) {
    const cond = `-n 'test (__unc_path) = "${n.path}"'`;
    if (n.subcommands.length) lines.push(`complete -c unc ${cond} -f -a '${n.subcommands.join(' ')}'`);
    for (const o of n.options) {
      lines.push(
        o.startsWith('--')
          ? `complete -c unc ${cond} -l ${o.slice(2)}`
          : `complete -c unc ${cond} -s ${o.slice(1)}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

export const SHELLS = ['bash', 'zsh', 'fish'] as const;

export function completionScript(shell: string, program: Command): string {
  const tree = completionTree(program);
  if (shell === 'bash') return bashScript(tree);
  if (shell === 'zsh') return zshScript(tree);
  if (shell === 'fish') return fishScript(tree);
  throw new UncError('BAD_SHELL', `no completion for "${shell}": one of ${SHELLS.join(', ')}`);
}

export function completionCommand(program: Command): Command {
  return new Command('completion')
    .description('print a shell completion script (bash, zsh or fish)')
    .argument('<shell>', SHELLS.join('|'))
    .addHelpText(
      'after',
      examples([
        'eval "$(unc completion bash)"        # in ~/.bashrc',
        'eval "$(unc completion zsh)"         # in ~/.zshrc',
        'unc completion fish > ~/.config/fish/completions/unc.fish',
      ]),
    )
    .action((shell: string) => {
      process.stdout.write(completionScript(shell, program));
    });
}
