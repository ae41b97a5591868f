/* ana_mdmp_crashpad.c -- Crashpad's info stream: process-wide simple annotations, and per
 * module (by index into the ModuleList) list annotations, simple annotations and annotation
 * objects, all into crash->annotations. A list annotation has no key (""); an annotation object
 * of a type other than string gets its bytes in hex.
 *
 * Format: Crashpad minidump/minidump_extensions.h "MinidumpCrashpadInfo",
 * "MinidumpSimpleStringDictionary(Entry)", "MinidumpModuleCrashpadInfoList",
 * "MinidumpModuleCrashpadInfoLink", "MinidumpModuleCrashpadInfo", "MinidumpRVAList",
 * "MinidumpAnnotationList", "MinidumpAnnotation", "MinidumpByteArray", "MinidumpUTF8String". */
#include "analyzer/ana_int.h"

#define CP_INFO_BYTES 52          /* version, report_id, client_id, two locations */
#define CP_DICT_ENTRY_BYTES 8     /* key RVA, value RVA */
#define CP_MODULE_LINK_BYTES 12   /* module index, location */
#define CP_MODULE_INFO_BYTES 20   /* version, list_annotations, simple_annotations */
#define CP_ANNOTATION_BYTES 12    /* name RVA, type u16, reserved u16, value RVA */
#define CP_ANNOTATION_STRING 1    /* Annotation::Type::kString */

/* A location inside the stream's file, as a stream-shaped window for ana__mdmp_list. */
static bool at(struct ana_mdmp *m, uint32_t size, uint32_t rva, struct ana_mdmp_stream *out)
{
    *out = (struct ana_mdmp_stream){ .type = ANA_MD_CRASHPAD_INFO, .rva = rva, .size = size };
    if (size == 0)
        return false;
    if (!cm_cur_window(&m->file, rva, size, &out->cur)) { /* MINIDUMP_LOCATION_DESCRIPTOR */
        ana__warn(m->c, "minidump: CrashpadInfo: location 0x%x of %u bytes lies outside the "
                        "file",
                  (unsigned)rva, (unsigned)size);
        return false;
    }
    return true;
}

static bool full(struct ana_mdmp *m)
{
    return m->c->annotation_count >= m->c->limits.max_annotations;
}

/* MinidumpSimpleStringDictionary at a location. */
static bool dictionary(struct ana_mdmp *m, uint32_t size, uint32_t rva, const char *module)
{
    struct ana_mdmp_stream loc;
    struct cm_cur e;
    uint32_t n;
    if (!at(m, size, rva, &loc) ||
        !ana__mdmp_list(m, &loc, CP_DICT_ENTRY_BYTES, UINT32_MAX, "dictionary entries", &n, &e))
        return true;
    for (uint32_t i = 0; i < n && !full(m); i++) {
        uint32_t key_rva, value_rva;
        cm_cur_u32le(&e, &key_rva);   /* MinidumpSimpleStringDictionaryEntry.key */
        cm_cur_u32le(&e, &value_rva); /* .value */
        const char *key = ana__mdmp_utf8(m, key_rva, "CrashpadInfo annotation key");
        const char *value = ana__mdmp_utf8(m, value_rva, "CrashpadInfo annotation value");
        if (key && value && !ana__mdmp_add_annotation(m, key, value, module))
            return false;
    }
    return true;
}

/* MinidumpRVAList of MinidumpUTF8String: keyless list annotations. */
static bool list_annotations(struct ana_mdmp *m, uint32_t size, uint32_t rva, const char *module)
{
    struct ana_mdmp_stream loc;
    struct cm_cur e;
    uint32_t n;
    if (!at(m, size, rva, &loc) ||
        !ana__mdmp_list(m, &loc, 4, UINT32_MAX, "list annotations", &n, &e))
        return true;
    for (uint32_t i = 0; i < n && !full(m); i++) {
        uint32_t value_rva;
        cm_cur_u32le(&e, &value_rva); /* MinidumpRVAList.children[i] */
        const char *value = ana__mdmp_utf8(m, value_rva, "CrashpadInfo list annotation");
        if (value && !ana__mdmp_add_annotation(m, "", value, module))
            return false;
    }
    return true;
}

/* MinidumpByteArray: a string for kString, else lower-case hex of the bytes. */
static const char *object_value(struct ana_mdmp *m, uint32_t rva, uint16_t type)
{
    struct ana_crash *c = m->c;
    if (type == CP_ANNOTATION_STRING)
        return ana__mdmp_utf8(m, rva, "CrashpadInfo annotation object");
    uint32_t len;
    struct cm_cur bytes;
    if (!cm_cur_peek_u32le(&m->file, rva, &len) || /* MinidumpByteArray.length */
        !cm_cur_window(&m->file, (uint64_t)rva + 4, len, &bytes)) {
        ana__warn(c, "minidump: CrashpadInfo: annotation object value at 0x%x lies outside the "
                     "file",
                  (unsigned)rva);
        return NULL;
    }
    size_t n = len < c->limits.max_string_bytes / 2 ? len : c->limits.max_string_bytes / 2;
    char *hex = ana__alloc(c, 2 * n + 1);
    for (size_t i = 0; hex && i < n; i++) {
        hex[2 * i] = "0123456789abcdef"[bytes.p[i] >> 4];
        hex[2 * i + 1] = "0123456789abcdef"[bytes.p[i] & 15];
    }
    if (hex)
        hex[2 * n] = 0;
    return hex;
}

/* MinidumpAnnotationList. */
static bool annotation_objects(struct ana_mdmp *m, uint32_t size, uint32_t rva,
                               const char *module)
{
    struct ana_mdmp_stream loc;
    struct cm_cur e;
    uint32_t n;
    if (!at(m, size, rva, &loc) ||
        !ana__mdmp_list(m, &loc, CP_ANNOTATION_BYTES, UINT32_MAX, "annotation objects", &n, &e))
        return true;
    for (uint32_t i = 0; i < n && !full(m); i++) {
        uint32_t name_rva, value_rva;
        uint16_t type, reserved;
        cm_cur_u32le(&e, &name_rva);  /* MinidumpAnnotation.name */
        cm_cur_u16le(&e, &type);      /* .type */
        cm_cur_u16le(&e, &reserved);  /* .reserved */
        cm_cur_u32le(&e, &value_rva); /* .value */
        const char *name = ana__mdmp_utf8(m, name_rva, "CrashpadInfo annotation object name");
        const char *value = name ? object_value(m, value_rva, type) : NULL;
        if (name && value && !ana__mdmp_add_annotation(m, name, value, module))
            return false;
    }
    return true;
}

/* MinidumpModuleCrashpadInfo of the module at index. */
static bool module_info(struct ana_mdmp *m, uint32_t index, uint32_t size, uint32_t rva)
{
    struct ana_crash *c = m->c;
    struct ana_mdmp_stream loc;
    if (!at(m, size, rva, &loc))
        return true;
    struct cm_cur cur = loc.cur;
    uint32_t version, list_size, list_rva, dict_size, dict_rva, obj_size = 0, obj_rva = 0;
    cm_cur_u32le(&cur, &version);   /* MinidumpModuleCrashpadInfo.version */
    cm_cur_u32le(&cur, &list_size); /* .list_annotations */
    cm_cur_u32le(&cur, &list_rva);
    cm_cur_u32le(&cur, &dict_size); /* .simple_annotations */
    cm_cur_u32le(&cur, &dict_rva);
    if (cur.failed) {
        ana__warn(c, "minidump: CrashpadInfo: module info at 0x%x of %u bytes is shorter than "
                     "the %d of MinidumpModuleCrashpadInfo",
                  (unsigned)rva, (unsigned)size, CP_MODULE_INFO_BYTES);
        return true;
    }
    if (cm_cur_left(&cur) >= 8) {
        cm_cur_u32le(&cur, &obj_size); /* .annotation_objects (added later; optional) */
        cm_cur_u32le(&cur, &obj_rva);
    }
    const char *module = NULL;
    if (index < c->module_count)
        module = c->modules[index].path;
    else
        ana__warn(c, "minidump: CrashpadInfo: annotations for module %u, which the ModuleList "
                     "does not hold",
                  (unsigned)index);
    return list_annotations(m, list_size, list_rva, module) &&
           dictionary(m, dict_size, dict_rva, module) &&
           annotation_objects(m, obj_size, obj_rva, module);
}

static bool module_list(struct ana_mdmp *m, uint32_t size, uint32_t rva)
{
    struct ana_mdmp_stream loc;
    struct cm_cur e;
    uint32_t n;
    if (!at(m, size, rva, &loc) ||
        !ana__mdmp_list(m, &loc, CP_MODULE_LINK_BYTES, UINT32_MAX, "module links", &n, &e))
        return true;
    for (uint32_t i = 0; i < n && !full(m); i++) {
        uint32_t index, info_size, info_rva;
        /* MinidumpModuleCrashpadInfoLink.minidump_module_list_index */
        cm_cur_u32le(&e, &index);
        cm_cur_u32le(&e, &info_size); /* .location.DataSize */
        cm_cur_u32le(&e, &info_rva);  /* .location.Rva */
        if (!module_info(m, index, info_size, info_rva))
            return false;
    }
    return true;
}

enum cm_code ana__mdmp_crashpad_info(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                     struct cm_err *err)
{
    struct ana_crash *c = m->c;
    struct cm_cur cur = s->cur;
    uint32_t version, dict_size, dict_rva, mods_size, mods_rva;
    uint8_t report_id[16], client_id[16];
    cm_cur_u32le(&cur, &version);                   /* MinidumpCrashpadInfo.version */
    cm_cur_bytes(&cur, report_id, sizeof report_id); /* .report_id */
    cm_cur_bytes(&cur, client_id, sizeof client_id); /* .client_id */
    cm_cur_u32le(&cur, &dict_size);                 /* .simple_annotations */
    cm_cur_u32le(&cur, &dict_rva);
    cm_cur_u32le(&cur, &mods_size);                 /* .module_list */
    cm_cur_u32le(&cur, &mods_rva);
    if (cur.failed || version == 0) {
        ana__warn(c, "minidump: CrashpadInfo at 0x%x: %u bytes of version %u, "
                     "MinidumpCrashpadInfo needs %d of version 1 or later; skipped",
                  (unsigned)s->rva, (unsigned)s->size, (unsigned)version, CP_INFO_BYTES);
        return CM_E_OK;
    }
    if (!dictionary(m, dict_size, dict_rva, NULL) || !module_list(m, mods_size, mods_rva))
        return cm_fail(err, CM_E_NOMEM, "minidump: out of memory reading CrashpadInfo");
    return CM_E_OK;
}
