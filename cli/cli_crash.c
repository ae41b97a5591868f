/* cli_crash.c -- `triagectl crash ID [--json]`: one crash as the service stored it: who sent it,
 * what became of it, its bucket and keys, and its processed stack. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_int.h"

static void print_field(const char *name, const char *value)
{
    if (value && *value)
        printf("%-14s %s\n", name, value);
}

/* The crashing thread's frames from the processed JSON, one line each. */
static void print_stack(const char *processed)
{
    json_error_t jerr;
    json_t *o = json_loads(processed, 0, &jerr);
    if (!o)
        return;
    json_t *frames = json_object_get(json_object_get(o, "crashing_thread"), "frames");
    size_t i;
    json_t *f;
    if (json_array_size(frames))
        printf("\ncrashing thread:\n");
    json_array_foreach(frames, i, f) {
        const char *mod = json_string_value(json_object_get(f, "module"));
        const char *fn = json_string_value(json_object_get(f, "function"));
        const char *off = json_string_value(json_object_get(f, "module_offset"));
        const char *addr = json_string_value(json_object_get(f, "offset"));
        const char *file = json_string_value(json_object_get(f, "file"));
        json_int_t line = json_integer_value(json_object_get(f, "line"));
        const char *trust = json_string_value(json_object_get(f, "trust"));
        printf("%3zu  ", i);
        if (mod && fn)
            printf("%s!%s", mod, fn);
        else if (mod)
            printf("%s + %s", mod, off ? off : "?");
        else
            printf("%s", addr ? addr : "?");
        if (file)
            printf(" [%s : %lld]", file, (long long)line);
        printf("  (%s)\n", trust ? trust : "?");
    }
    json_decref(o);
}

int cli_crash(int argc, char **argv)
{
    struct cli_dbopt dbo = { 0 };
    bool json = false;
    int rc = cli_parse_simple(argc, argv,
                              "usage: triagectl crash ID [--json] [--db URL | --data DIR]\n", 1,
                              &dbo, &json);
    if (rc >= 0)
        return rc;
    const char *id = argv[optind];
    if (strncmp(id, "bp-", 3) == 0) /* the id Breakpad/Crashpad reporters show */
        id += 3;
    struct db_conn *db;
    if (cli_db_connect(&dbo, &db))
        return 1;
    struct db_crash_info *c = NULL;
    struct cm_err err = { 0 };
    rc = 0;
    enum cm_code code = db_crash_get(db, NULL, id, &c, &err);
    if (code == CM_E_NOTFOUND) {
        fprintf(stderr, "triagectl crash: no crash %s\n", id);
        rc = 1;
    } else if (code) {
        fprintf(stderr, "triagectl crash: %s\n", err.msg);
        rc = 1;
    } else if (json) {
        json_t *o = json_object();
        char t[32];
        json_object_set_new(o, "crash_id", json_string(c->crash_id));
        json_object_set_new(o, "status", json_string(c->status));
        const struct { const char *k, *v; } fields[] = {
            { "host_id", c->host_id },          { "product", c->product },
            { "version", c->version },          { "channel", c->channel },
            { "os", c->os },                    { "os_version", c->os_version },
            { "dump_sha256", c->dump_sha256 },  { "dump_format", c->dump_format },
            { "failure_reason", c->failure_reason }, { "signature", c->signature },
            { "bucket", c->bucket_key },        { "fault_module", c->fault_module },
            { "fault_module_version", c->fault_module_version },
            { "fault_point", c->fault_point },  { "stack_hash", c->stack_hash },
            { "last_error", c->last_error },
        };
        for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
            json_object_set_new(o, fields[i].k, fields[i].v ? json_string(fields[i].v) : json_null());
        json_object_set_new(o, "received_at", json_string(cli_time_text(c->received_at_ms, t, 32)));
        json_object_set_new(o, "crash_time", json_string(cli_time_text(c->crash_time_ms, t, 32)));
        json_object_set_new(o, "attempts", json_integer(c->attempts));
        json_error_t jerr;
        json_t *ann = c->annotations_json ? json_loads(c->annotations_json, 0, &jerr) : NULL;
        json_object_set_new(o, "annotations", ann ? ann : json_null());
        json_t *proc = c->processed_json ? json_loads(c->processed_json, 0, &jerr) : NULL;
        json_object_set_new(o, "processed", proc ? proc : json_null());
        char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        puts(s);
        free(s);
        json_decref(o);
    } else {
        char t[32];
        print_field("crash", c->crash_id);
        print_field("status", c->status);
        print_field("failure", c->failure_reason);
        print_field("last error", c->last_error);
        print_field("host", c->host_id);
        print_field("product", c->product);
        print_field("version", c->version);
        print_field("os", c->os);
        print_field("received", cli_time_text(c->received_at_ms, t, 32));
        print_field("crash time", c->crash_time_ms ? cli_time_text(c->crash_time_ms, t, 32) : NULL);
        print_field("signature", c->signature);
        print_field("bucket", c->bucket_key);
        print_field("fault module", c->fault_module);
        print_field("module version", c->fault_module_version);
        print_field("fault point", c->fault_point);
        print_field("dump sha256", c->dump_sha256);
        if (c->processed_json)
            print_stack(c->processed_json);
    }
    db_crash_info_free(c);
    db_close(db);
    return rc;
}
