/* cli.h -- triagectl's subcommands, one cli_<name>.c each. Each takes the arguments after the
 * subcommand name (argv[0] is the subcommand) and returns the process exit status. */
#ifndef TRIAGE_CLI_H
#define TRIAGE_CLI_H

int cli_stackwalk(int argc, char **argv);
int cli_bucket_eval(int argc, char **argv);
int cli_buckets(int argc, char **argv);
int cli_bucket(int argc, char **argv);
int cli_crash(int argc, char **argv);
int cli_reprocess(int argc, char **argv);
int cli_up(int argc, char **argv);
int cli_demo(int argc, char **argv);
int cli_upload(int argc, char **argv);
int cli_want(int argc, char **argv);
int cli_incidents(int argc, char **argv);
int cli_incident(int argc, char **argv);

#endif
