/* cli_main.c -- triagectl: dispatches to one cli_<subcommand>.c each. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return 2;
}
