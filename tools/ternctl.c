/* ternctl: what administrators use to set up, inspect and steer tern. */
#include "ternctl.h"

#include <stdio.h>
#include <string.h>

static const struct {
	const char *name;
	const char *usage;
} commands[] = {
	{ "init", "init DIR --domain D... --user NAME... [--hostname H] [--dns-server IP[:port]]" },
	{ "compile", "compile" },
	{ "check", "check" },
	{ "queue", "queue [--json]" },
	{ "show", "show ID" },
	{ "flush", "flush [ID...]" },
	{ "delete", "delete ID..." },
	{ "hold", "hold ID..." },
	{ "release", "release ID..." },
	{ "bounce", "bounce ID..." },
	{ "stats", "stats" },
	{ "log", "log ID (not in this release)" },
	{ "passwd", "passwd NAME   (the password on standard input)" },
	{ "setup", "setup [--hostname H] [--domain D...] [--dry-run] (not in this release)" },
};

static void usage_all(FILE *f)
{
	fprintf(f, "usage: ternctl [-C FILE] COMMAND [ARGS] [-C FILE]\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  ternctl %s\n", commands[i].usage);
}

int ctl_load_conf(const struct ctl *ctl, struct tern_conf *conf)
{
	char err[CONF_ERROR_MAX];

	if (conf_load(conf, conf_choose_path(ctl->config_flag, false), err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct ctl ctl = { 0 };
	char *rest[argc + 1];
	const char *command = NULL;
	int nrest = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-C") == 0) {
			if (i + 1 >= argc) {
				usage_all(stderr);
				return CTL_USAGE;
			}
			ctl.config_flag = argv[++i];
		} else if (command == NULL && argv[i][0] != '-') {
			command = argv[i];
		} else if (command == NULL && (strcmp(argv[i], "--help") == 0 ||
					       strcmp(argv[i], "-h") == 0)) {
			usage_all(stdout);
			return CTL_OK;
		} else {
			rest[nrest++] = argv[i];
		}
	}
	rest[nrest] = NULL;
	if (command == NULL) {
		usage_all(stderr);
		return CTL_USAGE;
	}
	ctl.argc = nrest;
	ctl.argv = rest;
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (strcmp(commands[i].name, command) != 0)
			continue;
		if (nrest > 0 && strcmp(rest[0], "--help") == 0) {
			printf("usage: ternctl [-C FILE] %s\n", commands[i].usage);
			return CTL_OK;
		}
		if (strcmp(command, "init") == 0)
			return cmd_init(&ctl);
		if (strcmp(command, "compile") == 0)
			return cmd_compile(&ctl);
		if (strcmp(command, "check") == 0)
			return cmd_check(&ctl);
		if (strcmp(command, "queue") == 0)
			return cmd_queue(&ctl);
		if (strcmp(command, "show") == 0)
			return cmd_show(&ctl);
		if (strcmp(command, "stats") == 0)
			return cmd_stats(&ctl);
		if (strcmp(command, "passwd") == 0)
			return cmd_passwd(&ctl);
		if (strcmp(command, "log") == 0 || strcmp(command, "setup") == 0) {
			fprintf(stderr, "ternctl %s: not available in this release of tern\n", command);
			return CTL_REFUSED;
		}
		return cmd_request(&ctl, command);
	}
	fprintf(stderr, "ternctl: unknown command '%s'\n", command);
	usage_all(stderr);
	return CTL_USAGE;
}
