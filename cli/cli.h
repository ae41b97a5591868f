/* cli.h -- triagectl's subcommands, one cli_<name>.c each. Each takes the arguments after the
 * subcommand name (argv[0] is the subcommand) and returns the process exit status. */
#ifndef TRIAGE_CLI_H
#define TRIAGE_CLI_H

int cli_stackwalk(int argc, char **argv);

#endif
