/*
 * The payload validator: a table of payloads with the exact problems (paths in document order,
 * key words of each message) they must produce, then the cases a table cannot express.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validator.h"

#define MAX_EXPECT 8

struct expect {
    const char *path;
    const char *words; /* '|'-separated pieces that must all appear in the message */
};

struct vcase {
    const char *name;
    const char *json; /* ' stands for ", ` for ' */
    enum validator_verdict verdict;
    struct expect problems[MAX_EXPECT];
};

/* a valid body around the given tables and extra root members */
#define BODY(tables, extra)                                                                        \
    "{'name':'acme','datasourceName':'pg','tableList':[" tables "]" extra "}"
#define TABLE "{'name':'orders','columns':[{'name':'id'}]}"
#define COLUMNS(cols) "{'name':'orders','columns':[" cols "]}"
#define RELATION                                                                                   \
    "'parentTableName':'customers','parentColumnName':'id','childTableName':'orders',"             \
    "'childColumnName':'customer_id','relationshipName':'customer_orders'"
#define TENANCY_TABLE                                                                              \
    "'tenancyLevel':'TABLE','clientColumnType':'STRING','schemaName':'public',"                    \
    "'tableName':'tenants','tableClientNameColumn':'name','tablePrimaryKeyColumn':'id'"

static const struct vcase cases[] = {
    /* valid payloads */
    {"minimal", BODY(TABLE, ""), VALIDATOR_OK, {{0}}},
    {"everything",
     BODY("{'name':'orders','schemaName':'public','label':'Orders','clientColumn':'tenant_id',"
          "'isHide':false,'columns':[{'name':'id','alias':'ID','label':'Id','isHide':true,"
          "'isApplyTimezone':false},{'name':'revenue','isCustomColumn':true,"
          "'sql':'quantity * unit_price'}]}",
          ",'tenancySettings':{" TENANCY_TABLE "},'relationships':[{" RELATION
          ",'cardinality':'OneToMany','join':'LEFT JOIN'}]"),
     VALIDATOR_OK,
     {{0}}},
    {"database tenancy needs no mapping table",
     BODY(TABLE, ",'tenancySettings':{'tenancyLevel':'DATABASE'}"),
     VALIDATOR_OK,
     {{0}}},
    {"unknown keys pass through everywhere",
     BODY("{'name':'orders','x-table':[1,{'a':null}],'columns':[{'name':'id','isAggregate':true,"
          "'format':{'n':1}}]}",
          ",'future':{'deep':[{'x':1}]},'description':'sales'"),
     VALIDATOR_OK,
     {{0}}},
    {"cardinality and join may be null",
     BODY(TABLE, ",'relationships':[{" RELATION ",'cardinality':null,'join':null}]"),
     VALIDATOR_OK,
     {{0}}},
    {"every cardinality and join",
     BODY(TABLE, ",'relationships':[{" RELATION
                 ",'cardinality':'ManyToMany','join':'INNER JOIN'},{" RELATION
                 ",'cardinality':'ManyToOne','join':'RIGHT JOIN'},{" RELATION
                 ",'cardinality':'OneToOne','join':'FULL JOIN'}]"),
     VALIDATOR_OK,
     {{0}}},
    {"a relationship may name a table absent from tableList",
     BODY(TABLE, ",'relationships':[{'parentTableName':'elsewhere','parentColumnName':'id',"
                 "'childTableName':'nowhere','childColumnName':'x','relationshipName':'r'}]"),
     VALIDATOR_OK,
     {{0}}},
    {"relationships may be empty", BODY(TABLE, ",'relationships':[]"), VALIDATOR_OK, {{0}}},
    {"labels and aliases may be empty",
     BODY("{'name':'orders','label':'','columns':[{'name':'id','alias':'','label':' '}]}", ""),
     VALIDATOR_OK,
     {{0}}},
    {"the same column name in two tables",
     BODY(TABLE ",{'name':'customers','columns':[{'name':'id'}]}", ""),
     VALIDATOR_OK,
     {{0}}},
    {"the same table name in two schemas",
     BODY("{'name':'t','schemaName':'a','columns':[{'name':'id'}]},"
          "{'name':'t','schemaName':'b','columns':[{'name':'id'}]},"
          "{'name':'t','columns':[{'name':'id'}]}",
          ""),
     VALIDATOR_OK,
     {{0}}},
    {"table and column names are case-sensitive",
     BODY("{'name':'T','columns':[{'name':'id'},{'name':'ID'}]},{'name':'t','columns':[{'name':'"
          "id'}]}",
          ""),
     VALIDATOR_OK,
     {{0}}},
    {"sql without isCustomColumn",
     BODY(COLUMNS("{'name':'id','sql':''},{'name':'x','isCustomColumn':false}"), ""),
     VALIDATOR_OK,
     {{0}}},
    {"unicode text and escapes",
     BODY("{'name':'caf\xc3\xa9','columns':[{'name':'\\ud83d\\ude00 \\u00e9\\n\\t\\/'}]}", ""),
     VALIDATOR_OK,
     {{0}}},
    {"whitespace around and inside",
     " \n\t{ 'name' : 'a' , 'datasourceName':'b','tableList' : [ "
     "{'name':'c','columns':[{'name':'d'}]} ] }\r\n ",
     VALIDATOR_OK,
     {{0}}},
    {"numbers in unknown fields",
     BODY(TABLE, ",'n':[0,-0,12,-1.5,2e10,3E-2,4.25e+1,123456789012345678901234567890]"),
     VALIDATOR_OK,
     {{0}}},

    /* not JSON: a single problem at $ */
    {"empty", "", VALIDATOR_NOT_JSON, {{"$", "empty"}}},
    {"only whitespace", " \n ", VALIDATOR_NOT_JSON, {{"$", "empty"}}},
    {"trailing garbage",
     BODY(TABLE, "") " x",
     VALIDATOR_NOT_JSON,
     {{"$", "not valid JSON|near byte 96|after the JSON value"}}},
    {"two values", "{}{}", VALIDATOR_NOT_JSON, {{"$", "near byte 2|after the JSON value"}}},
    {"truncated",
     "{'name':'acme','tableList':[",
     VALIDATOR_NOT_JSON,
     {{"$", "not valid JSON|near byte 28|expected a value"}}},
    {"unterminated string", "{'name", VALIDATOR_NOT_JSON, {{"$", "unterminated string"}}},
    {"invalid UTF-8 byte",
     "{'name':'a\xff'}",
     VALIDATOR_NOT_JSON,
     {{"$", "not valid UTF-8|near byte 10"}}},
    {"overlong UTF-8", "{'name':'\xc0\xaf'}", VALIDATOR_NOT_JSON, {{"$", "not valid UTF-8"}}},
    {"UTF-8 encoded surrogate",
     "{'name':'\xed\xa0\x80'}",
     VALIDATOR_NOT_JSON,
     {{"$", "not valid UTF-8"}}},
    {"truncated UTF-8 sequence",
     "{'name':'\xe2\x82'}",
     VALIDATOR_NOT_JSON,
     {{"$", "not valid UTF-8"}}},
    {"invalid UTF-8 in a key", "{'n\xfe':1}", VALIDATOR_NOT_JSON, {{"$", "not valid UTF-8"}}},
    {"byte order mark", "\xef\xbb\xbf{}", VALIDATOR_NOT_JSON, {{"$", "near byte 0"}}},
    {"single quotes", "{`name`:`a`}", VALIDATOR_NOT_JSON, {{"$", "near byte 1|string key"}}},
    {"trailing comma in an object",
     "{'a':1,}",
     VALIDATOR_NOT_JSON,
     {{"$", "near byte 7|string key"}}},
    {"trailing comma in an array",
     "{'a':[1,]}",
     VALIDATOR_NOT_JSON,
     {{"$", "near byte 8|expected a value"}}},
    {"missing colon", "{'a' 1}", VALIDATOR_NOT_JSON, {{"$", "expected ':'"}}},
    {"missing comma", "{'a':1 'b':2}", VALIDATOR_NOT_JSON, {{"$", "expected ',' or '}'"}}},
    {"leading zero", "{'a':01}", VALIDATOR_NOT_JSON, {{"$", "near byte 6"}}},
    {"bare fraction", "{'a':1.}", VALIDATOR_NOT_JSON, {{"$", "invalid number"}}},
    {"plus sign", "{'a':+1}", VALIDATOR_NOT_JSON, {{"$", "expected a value"}}},
    {"NaN", "{'a':NaN}", VALIDATOR_NOT_JSON, {{"$", "expected a value"}}},
    {"number longer than cJSON takes",
     "{'a':1234567890123456789012345678901234567890123456789012345678901234}",
     VALIDATOR_NOT_JSON,
     {{"$", "longer than 63"}}},
    {"comment", "{/* c */}", VALIDATOR_NOT_JSON, {{"$", "near byte 1"}}},
    {"lone high surrogate",
     "{'a':'\\ud800x'}",
     VALIDATOR_NOT_JSON,
     {{"$", "near byte 6|surrogate"}}},
    {"lone low surrogate", "{'a':'\\udc00'}", VALIDATOR_NOT_JSON, {{"$", "surrogate"}}},
    {"escaped NUL", "{'name':'a\\u0000b'}", VALIDATOR_NOT_JSON, {{"$", "near byte 10|NUL"}}},
    {"raw control character",
     "{'a':'x\ty'}",
     VALIDATOR_NOT_JSON,
     {{"$", "near byte 7|control character"}}},
    {"invalid escape", "{'a':'\\x'}", VALIDATOR_NOT_JSON, {{"$", "invalid escape"}}},
    {"short unicode escape", "{'a':'\\u12'}", VALIDATOR_NOT_JSON, {{"$", "invalid \\u escape"}}},
    {"literal typo", "{'a':nul}", VALIDATOR_NOT_JSON, {{"$", "expected a value"}}},

    /* the root */
    {"array at the root", "[1]", VALIDATOR_INVALID, {{"$", "expected a JSON object|an array"}}},
    {"string at the root",
     "'x'",
     VALIDATOR_INVALID,
     {{"$", "expected a JSON object|the string \"x\""}}},
    {"empty object",
     "{}",
     VALIDATOR_INVALID,
     {{"name", "expected a non-blank string|missing"},
      {"datasourceName", "missing"},
      {"tableList", "expected a non-empty array of table objects|missing"}}},

    /* required strings */
    {"name empty",
     "{'name':'','datasourceName':'pg','tableList':[" TABLE "]}",
     VALIDATOR_INVALID,
     {{"name", "expected a non-blank string|found an empty string"}}},
    {"name blank",
     "{'name':' \\t\\n','datasourceName':'pg','tableList':[" TABLE "]}",
     VALIDATOR_INVALID,
     {{"name", "found a blank string"}}},
    {"name blank with unicode spaces",
     "{'name':'\\u00a0\xe3\x80\x80\\u2003','datasourceName':'pg','tableList':[" TABLE "]}",
     VALIDATOR_INVALID,
     {{"name", "found a blank string"}}},
    {"name a number",
     "{'name':7,'datasourceName':'pg','tableList':[" TABLE "]}",
     VALIDATOR_INVALID,
     {{"name", "expected a non-blank string|found a number"}}},
    {"datasourceName null",
     "{'name':'a','datasourceName':null,'tableList':[" TABLE "]}",
     VALIDATOR_INVALID,
     {{"datasourceName", "found null"}}},
    {"datasourceName missing",
     "{'name':'a','tableList':[" TABLE "]}",
     VALIDATOR_INVALID,
     {{"datasourceName", "expected a non-blank string|nothing (the key is missing)"}}},

    /* tableList */
    {"tableList missing",
     "{'name':'a','datasourceName':'pg'}",
     VALIDATOR_INVALID,
     {{"tableList", "non-empty array|missing"}}},
    {"tableList empty",
     "{'name':'a','datasourceName':'pg','tableList':[]}",
     VALIDATOR_INVALID,
     {{"tableList", "non-empty array of table objects|found an empty array"}}},
    {"tableList an object",
     "{'name':'a','datasourceName':'pg','tableList':{}}",
     VALIDATOR_INVALID,
     {{"tableList", "found an object"}}},
    {"table not an object",
     BODY(TABLE ",'orders',[]", ""),
     VALIDATOR_INVALID,
     {{"tableList[1]", "expected a table object|the string \"orders\""},
      {"tableList[2]", "expected a table object|found an empty array"}}},
    {"table name missing",
     BODY("{'columns':[{'name':'id'}]}", ""),
     VALIDATOR_INVALID,
     {{"tableList[0].name", "missing"}}},
    {"table name blank",
     BODY("{'name':'  ','columns':[{'name':'id'}]}", ""),
     VALIDATOR_INVALID,
     {{"tableList[0].name", "blank"}}},
    {"schemaName blank",
     BODY("{'name':'t','schemaName':'','columns':[{'name':'id'}]}", ""),
     VALIDATOR_INVALID,
     {{"tableList[0].schemaName", "non-blank string|empty string"}}},
    {"schemaName a number",
     BODY("{'name':'t','schemaName':1,'columns':[{'name':'id'}]}", ""),
     VALIDATOR_INVALID,
     {{"tableList[0].schemaName", "found a number"}}},
    {"clientColumn blank",
     BODY("{'name':'t','clientColumn':' ','columns':[{'name':'id'}]}", ""),
     VALIDATOR_INVALID,
     {{"tableList[0].clientColumn", "blank"}}},
    {"table label not a string",
     BODY("{'name':'t','label':{},'columns':[{'name':'id'}]}", ""),
     VALIDATOR_INVALID,
     {{"tableList[0].label", "expected a string|found an object"}}},
    {"table isHide a string",
     BODY("{'name':'t','isHide':'false','columns':[{'name':'id'}]}", ""),
     VALIDATOR_INVALID,
     {{"tableList[0].isHide", "expected true or false|the string \"false\""}}},

    /* columns */
    {"columns missing",
     BODY("{'name':'t'}", ""),
     VALIDATOR_INVALID,
     {{"tableList[0].columns", "non-empty array of column objects|missing"}}},
    {"columns empty",
     BODY("{'name':'t','columns':[]}", ""),
     VALIDATOR_INVALID,
     {{"tableList[0].columns", "found an empty array"}}},
    {"columns a string",
     BODY("{'name':'t','columns':'id'}", ""),
     VALIDATOR_INVALID,
     {{"tableList[0].columns", "the string \"id\""}}},
    {"column not an object",
     BODY(COLUMNS("{'name':'id'},true"), ""),
     VALIDATOR_INVALID,
     {{"tableList[0].columns[1]", "expected a column object|found true"}}},
    {"column name missing",
     BODY(COLUMNS("{'label':'x'}"), ""),
     VALIDATOR_INVALID,
     {{"tableList[0].columns[0].name", "missing"}}},
    {"column alias a number",
     BODY(COLUMNS("{'name':'id','alias':3}"), ""),
     VALIDATOR_INVALID,
     {{"tableList[0].columns[0].alias", "expected a string|a number"}}},
    {"column isHide a string",
     BODY(COLUMNS("{'name':'id','isHide':'true'}"), ""),
     VALIDATOR_INVALID,
     {{"tableList[0].columns[0].isHide", "true or false|the string \"true\""}}},
    {"isCustomColumn a number",
     BODY(COLUMNS("{'name':'id','isCustomColumn':1,'sql':'1'}"), ""),
     VALIDATOR_INVALID,
     {{"tableList[0].columns[0].isCustomColumn", "true or false|a number"}}},
    {"isApplyTimezone null",
     BODY(COLUMNS("{'name':'id','isApplyTimezone':null}"), ""),
     VALIDATOR_INVALID,
     {{"tableList[0].columns[0].isApplyTimezone", "true or false|found null"}}},
    {"custom column without sql",
     BODY(COLUMNS("{'name':'total','isCustomColumn':true}"), ""),
     VALIDATOR_INVALID,
     {{"tableList[0].columns[0].sql", "non-blank SQL expression|isCustomColumn is true|missing"}}},
    {"custom column with blank sql",
     BODY(COLUMNS("{'name':'total','sql':'  ','isCustomColumn':true}"), ""),
     VALIDATOR_INVALID,
     {{"tableList[0].columns[0].sql", "isCustomColumn is true|blank"}}},
    {"sql not a string",
     BODY(COLUMNS("{'name':'total','isCustomColumn':true,'sql':['a']}"), ""),
     VALIDATOR_INVALID,
     {{"tableList[0].columns[0].sql", "expected a string|an array"}}},

    /* tenancySettings */
    {"tenancySettings not an object",
     BODY(TABLE, ",'tenancySettings':'TABLE'"),
     VALIDATOR_INVALID,
     {{"tenancySettings", "expected an object|the string \"TABLE\""}}},
    {"tenancyLevel missing",
     BODY(TABLE, ",'tenancySettings':{}"),
     VALIDATOR_INVALID,
     {{"tenancySettings.tenancyLevel", "one of TABLE, DATABASE|missing"}}},
    {"tenancyLevel unknown",
     BODY(TABLE, ",'tenancySettings':{'tenancyLevel':'ROW'}"),
     VALIDATOR_INVALID,
     {{"tenancySettings.tenancyLevel", "one of TABLE, DATABASE|the string \"ROW\""}}},
    {"tenancyLevel is case-sensitive",
     BODY(TABLE, ",'tenancySettings':{'tenancyLevel':'table'}"),
     VALIDATOR_INVALID,
     {{"tenancySettings.tenancyLevel", "\"table\""}}},
    {"TABLE tenancy without its mapping table",
     BODY(TABLE, ",'tenancySettings':{'tenancyLevel':'TABLE'}"),
     VALIDATOR_INVALID,
     {{"tenancySettings.clientColumnType", "one of NUMBER, STRING|tenancyLevel is TABLE|missing"},
      {"tenancySettings.schemaName", "non-blank string|tenancyLevel is TABLE"},
      {"tenancySettings.tableName", "tenancyLevel is TABLE"},
      {"tenancySettings.tableClientNameColumn", "tenancyLevel is TABLE"},
      {"tenancySettings.tablePrimaryKeyColumn", "tenancyLevel is TABLE"}}},
    {"a key twice in tenancySettings",
     BODY(TABLE, ",'tenancySettings':{" TENANCY_TABLE ",'clientColumnType':'INT'}"),
     VALIDATOR_INVALID,
     {{"tenancySettings.clientColumnType", "expected each key at most once|\"clientColumnType\""}}},
    {"clientColumnType wrong",
     BODY(TABLE, ",'tenancySettings':{'tenancyLevel':'TABLE','clientColumnType':'INT',"
                 "'schemaName':'public','tableName':'tenants','tableClientNameColumn':'name',"
                 "'tablePrimaryKeyColumn':'id'}"),
     VALIDATOR_INVALID,
     {{"tenancySettings.clientColumnType", "one of NUMBER, STRING|the string \"INT\""}}},
    {"TABLE tenancy with a blank table name",
     BODY(TABLE, ",'tenancySettings':{'tenancyLevel':'TABLE','clientColumnType':'NUMBER',"
                 "'schemaName':'public','tableName':' ','tableClientNameColumn':'name',"
                 "'tablePrimaryKeyColumn':'id'}"),
     VALIDATOR_INVALID,
     {{"tenancySettings.tableName", "blank"}}},
    {"DATABASE tenancy still checks what is given",
     BODY(TABLE, ",'tenancySettings':{'tenancyLevel':'DATABASE','tableName':''}"),
     VALIDATOR_INVALID,
     {{"tenancySettings.tableName", "empty string"}}},

    /* relationships */
    {"relationships an object",
     BODY(TABLE, ",'relationships':{}"),
     VALIDATOR_INVALID,
     {{"relationships", "array of relationship objects|an object"}}},
    {"relationship not an object",
     BODY(TABLE, ",'relationships':[null]"),
     VALIDATOR_INVALID,
     {{"relationships[0]", "expected a relationship object|found null"}}},
    {"relationship empty",
     BODY(TABLE, ",'relationships':[{}]"),
     VALIDATOR_INVALID,
     {{"relationships[0].parentTableName", "missing"},
      {"relationships[0].parentColumnName", "missing"},
      {"relationships[0].childTableName", "missing"},
      {"relationships[0].childColumnName", "missing"},
      {"relationships[0].relationshipName", "missing"}}},
    {"relationshipName blank",
     BODY(TABLE, ",'relationships':[{'parentTableName':'a','parentColumnName':'b',"
                 "'childTableName':'c','childColumnName':'d','relationshipName':''}]"),
     VALIDATOR_INVALID,
     {{"relationships[0].relationshipName", "empty string"}}},
    {"cardinality unknown",
     BODY(TABLE, ",'relationships':[{" RELATION ",'cardinality':'1:n'}]"),
     VALIDATOR_INVALID,
     {{"relationships[0].cardinality", "null or one of ManyToMany, ManyToOne, OneToMany, "
                                       "OneToOne|the string \"1:n\""}}},
    {"cardinality is case-sensitive",
     BODY(TABLE, ",'relationships':[{" RELATION ",'cardinality':'onetomany'}]"),
     VALIDATOR_INVALID,
     {{"relationships[0].cardinality", "\"onetomany\""}}},
    {"join unknown",
     BODY(TABLE, ",'relationships':[{" RELATION ",'join':'OUTER JOIN'}]"),
     VALIDATOR_INVALID,
     {{"relationships[0].join", "INNER JOIN, LEFT JOIN, RIGHT JOIN, FULL JOIN|\"OUTER JOIN\""}}},
    {"join a boolean",
     BODY(TABLE, ",'relationships':[{" RELATION ",'join':false}]"),
     VALIDATOR_INVALID,
     {{"relationships[0].join", "found false"}}},

    /* repeats */
    {"the same table twice",
     BODY(TABLE ",{'name':'customers','columns':[{'name':'id'}]}," TABLE, ""),
     VALIDATOR_INVALID,
     {{"tableList[2]", "each table once|\"orders\"|first at tableList[0]"}}},
    {"the same schema and table twice",
     BODY("{'name':'t','schemaName':'s','columns':[{'name':'id'}]},"
          "{'schemaName':'s','name':'t','columns':[{'name':'id'}]}",
          ""),
     VALIDATOR_INVALID,
     {{"tableList[1]", "\"t\" in schema \"s\"|first at tableList[0]"}}},
    {"a column name twice in a table",
     BODY(COLUMNS("{'name':'id'},{'name':'x'},{'name':'y'},{'name':'x'}"), ""),
     VALIDATOR_INVALID,
     {{"tableList[0].columns[3].name", "each column name once|\"x\"|first at columns[1]"}}},
    {"a column name three times",
     BODY(COLUMNS("{'name':'a'},{'name':'a'},{'name':'a'}"), ""),
     VALIDATOR_INVALID,
     {{"tableList[0].columns[1].name", "first at columns[0]"},
      {"tableList[0].columns[2].name", "first at columns[0]"}}},
    {"a key twice",
     "{'name':'a','datasourceName':'pg','name':'b','tableList':[" TABLE "]}",
     VALIDATOR_INVALID,
     {{"name", "each key at most once|\"name\" again"}}},
    {"a key twice, spelled differently",
     "{'name':'a','datasourceName':'pg','n\\u0061me':'b','tableList':[" TABLE "]}",
     VALIDATOR_INVALID,
     {{"name", "each key at most once"}}},
    {"a key twice in an unknown object",
     BODY(TABLE, ",'meta':{'x':[{'k':1,'k':2}]}"),
     VALIDATOR_INVALID,
     {{"meta.x[0].k", "each key at most once|\"k\""}}},

    /* reporting */
    {"all problems, in document order",
     "{'name':'','tableList':[{'name':'t','columns':[{'name':'id','isHide':1},"
     "{'name':'c','isCustomColumn':true}]},{'columns':[]}],'datasourceName':' ',"
     "'relationships':[{" RELATION ",'join':'CROSS JOIN'}]}",
     VALIDATOR_INVALID,
     {{"name", "empty string"},
      {"tableList[0].columns[0].isHide", "true or false"},
      {"tableList[0].columns[1].sql", "isCustomColumn is true"},
      {"tableList[1].columns", "found an empty array"},
      {"tableList[1].name", "missing"},
      {"datasourceName", "blank"},
      {"relationships[0].join", "\"CROSS JOIN\""}}},
    {"keys that are not identifiers are bracket-quoted",
     BODY(TABLE, ",'my key':{'a.b':{'x':1,'x':2}}"),
     VALIDATOR_INVALID,
     {{"[\"my key\"][\"a.b\"].x", "each key at most once"}}},
    {"control characters in found values are escaped",
     BODY(TABLE, ",'tenancySettings':{"
                 "'tenancyLevel':'a\\u0001\\n\\"
                 "u2028\\u0085\\\\\\\"'}"),
     VALIDATOR_INVALID,
     {{"tenancySettings.tenancyLevel", "the string \"a\\u0001\\n\\u2028\\u0085\\\\\\\"\""}}},
    {"long values are shortened",
     BODY(TABLE, ",'tenancySettings':{'tenancyLevel':'"
                 "0123456789012345678901234567890123456789012345678901234567890123456789'}"),
     VALIDATOR_INVALID,
     {{"tenancySettings.tenancyLevel",
       "\"0123456789012345678901234567890123456789012345678901234567890123...\""}}},
};

/* the JSON of a case: ' becomes ", ` becomes ' */
static char *case_json(const char *src)
{
    char *json = strdup(src);

    assert_non_null(json);
    for (char *p = json; *p; p++) {
        if (*p == '\'')
            *p = '"';
        else if (*p == '`')
            *p = '\'';
    }
    return json;
}

static void assert_words(const char *message, const char *words)
{
    char *copy = strdup(words);
    char *save = NULL;

    assert_non_null(copy);
    for (char *w = strtok_r(copy, "|", &save); w; w = strtok_r(NULL, "|", &save)) {
        if (!strstr(message, w))
            fail_msg("message \"%s\" lacks \"%s\"", message, w);
    }
    free(copy);
}

static void assert_no_control_bytes(const char *s)
{
    for (; *s; s++)
        assert_true((unsigned char)*s >= 0x20 && *s != 0x7f);
}

static void dump(const struct validator_result *r)
{
    for (size_t i = 0; i < validator_result_count(r); i++)
        print_error("  %s: %s\n", validator_result_path(r, i), validator_result_message(r, i));
}

static void run_case(void **state)
{
    const struct vcase *c = *state;
    char *json = case_json(c->json);
    struct validator_result *r = validator_check(json, strlen(json), 0);
    size_t expected = 0;

    assert_non_null(r);
    while (expected < MAX_EXPECT && c->problems[expected].path)
        expected++;
    if (validator_result_verdict(r) != c->verdict || validator_result_count(r) != expected) {
        dump(r);
        fail_msg("verdict %d with %zu problems, expected verdict %d with %zu",
                 validator_result_verdict(r), validator_result_count(r), c->verdict, expected);
    }
    for (size_t i = 0; i < expected; i++) {
        if (strcmp(validator_result_path(r, i), c->problems[i].path) != 0) {
            dump(r);
            fail_msg("problem %zu is at %s, expected %s", i, validator_result_path(r, i),
                     c->problems[i].path);
        }
        assert_words(validator_result_message(r, i), c->problems[i].words);
        assert_no_control_bytes(validator_result_message(r, i));
        assert_no_control_bytes(validator_result_path(r, i));
    }
    validator_result_free(r);
    free(json);
}

static struct validator_result *check_text(const char *text)
{
    char *json = case_json(text);
    struct validator_result *r = validator_check(json, strlen(json), 0);

    assert_non_null(r);
    free(json);
    return r;
}

static void test_name(void **state)
{
    struct validator_result *r;

    (void)state;
    r = check_text(BODY(TABLE, ""));
    assert_string_equal(validator_result_name(r), "acme");
    validator_result_free(r);
    /* invalid elsewhere: the name is still known, for logs and outcomes */
    r = check_text("{'name':'acme-1','tableList':[]}");
    assert_int_equal(validator_result_verdict(r), VALIDATOR_INVALID);
    assert_string_equal(validator_result_name(r), "acme-1");
    validator_result_free(r);
    r = check_text("{'name':'  ','datasourceName':'x'}");
    assert_null(validator_result_name(r));
    validator_result_free(r);
    r = check_text("{'name':'acme'");
    assert_null(validator_result_name(r));
    validator_result_free(r);
}

static void test_errors_json(void **state)
{
    struct validator_result *r;
    char *json;
    cJSON *parsed;
    const cJSON *item;
    size_t i = 0;

    (void)state;
    r = check_text("{'name':'','datasourceName':'a\\\"\\\\','tableList':[],'x':{'k\\u0001':1,"
                   "'k\\u0001':2}}");
    json = validator_result_errors_json(r);
    assert_non_null(json);
    parsed = cJSON_Parse(json);
    assert_non_null(parsed);
    assert_true(cJSON_IsArray(parsed));
    assert_int_equal(cJSON_GetArraySize(parsed), validator_result_count(r));
    assert_int_equal(validator_result_count(r), 3);
    cJSON_ArrayForEach(item, parsed)
    {
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(item, "path");
        const cJSON *message = cJSON_GetObjectItemCaseSensitive(item, "message");

        assert_int_equal(cJSON_GetArraySize(item), 2);
        assert_true(cJSON_IsString(path) && cJSON_IsString(message));
        assert_string_equal(path->valuestring, validator_result_path(r, i));
        assert_string_equal(message->valuestring, validator_result_message(r, i));
        i++;
    }
    assert_string_equal(validator_result_path(r, 2), "x[\"k\\u0001\"]");
    cJSON_Delete(parsed);
    free(json);
    validator_result_free(r);

    r = check_text(BODY(TABLE, ""));
    json = validator_result_errors_json(r);
    assert_string_equal(json, "[]");
    free(json);
    validator_result_free(r);
}

static void test_not_nul_terminated(void **state)
{
    char *json = case_json(BODY(TABLE, "") "garbage");
    size_t len = strlen(json) - strlen("garbage");
    struct validator_result *r;

    (void)state;
    r = validator_check(json, len, 0);
    assert_non_null(r);
    assert_int_equal(validator_result_verdict(r), VALIDATOR_OK);
    validator_result_free(r);
    /* a cut in the middle of a literal or a string must not read past len */
    r = validator_check("{\"a\":true}", 8, 0);
    assert_int_equal(validator_result_verdict(r), VALIDATOR_NOT_JSON);
    validator_result_free(r);
    r = validator_check("{\"a\":\"xyz\"}", 7, 0);
    assert_int_equal(validator_result_verdict(r), VALIDATOR_NOT_JSON);
    validator_result_free(r);
    free(json);
}

static void test_size_limit(void **state)
{
    char *json = case_json(BODY(TABLE, ""));
    size_t len = strlen(json);
    struct validator_result *r;

    (void)state;
    r = validator_check(json, len, len);
    assert_int_equal(validator_result_verdict(r), VALIDATOR_OK);
    validator_result_free(r);
    r = validator_check(json, len, len - 1);
    assert_int_equal(validator_result_verdict(r), VALIDATOR_NOT_JSON);
    assert_int_equal(validator_result_count(r), 1);
    assert_string_equal(validator_result_path(r, 0), "$");
    assert_words(validator_result_message(r, 0), "exceeds the limit of");
    validator_result_free(r);
    free(json);
}

static void test_default_limit(void **state)
{
    size_t len = VALIDATOR_DEFAULT_MAX_BYTES + 1;
    char *big = malloc(len);
    struct validator_result *r;

    (void)state;
    assert_non_null(big);
    memset(big, ' ', len);
    memcpy(big, "{}", 2);
    r = validator_check(big, len, 0);
    assert_int_equal(validator_result_verdict(r), VALIDATOR_NOT_JSON);
    assert_words(validator_result_message(r, 0), "exceeds the limit of 1048576 bytes");
    validator_result_free(r);
    r = validator_check(big, len - 1, 0);
    assert_int_equal(validator_result_verdict(r), VALIDATOR_INVALID);
    validator_result_free(r);
    free(big);
}

/* {"x": [[[...]]]} with levels containers in all, the root object included */
static char *nested(size_t levels)
{
    char *s = malloc(2 * levels + 16);
    size_t n = 0;

    assert_non_null(s);
    n += (size_t)sprintf(s, "{\"x\":");
    for (size_t i = 1; i < levels; i++)
        s[n++] = '[';
    for (size_t i = 1; i < levels; i++)
        s[n++] = ']';
    s[n++] = '}';
    s[n] = '\0';
    return s;
}

static void test_depth(void **state)
{
    char *ok = nested(VALIDATOR_MAX_DEPTH);
    char *deep = nested(VALIDATOR_MAX_DEPTH + 1);
    char *deeper = nested(100000);
    struct validator_result *r;

    (void)state;
    r = validator_check(ok, strlen(ok), 0);
    assert_int_not_equal(validator_result_verdict(r), VALIDATOR_NOT_JSON);
    validator_result_free(r);
    r = validator_check(deep, strlen(deep), 0);
    assert_int_equal(validator_result_verdict(r), VALIDATOR_NOT_JSON);
    assert_words(validator_result_message(r, 0), "deeper than 64 levels|near byte 68");
    validator_result_free(r);
    r = validator_check(deeper, strlen(deeper), 0);
    assert_int_equal(validator_result_verdict(r), VALIDATOR_NOT_JSON);
    validator_result_free(r);
    free(ok);
    free(deep);
    free(deeper);
}

static void test_problem_limit(void **state)
{
    char *json = malloc(100 * 32 + 256);
    size_t n = 0;
    struct validator_result *r;

    (void)state;
    assert_non_null(json);
    n += (size_t)sprintf(json, "{\"name\":\"a\",\"datasourceName\":\"b\",\"tableList\":[");
    for (int i = 0; i < 100; i++)
        n += (size_t)sprintf(json + n, "%s{\"name\":\"t%d\"}", i ? "," : "", i);
    sprintf(json + n, "]}");
    r = validator_check(json, strlen(json), 0);
    assert_int_equal(validator_result_verdict(r), VALIDATOR_INVALID);
    assert_int_equal(validator_result_count(r), VALIDATOR_MAX_PROBLEMS + 1);
    assert_string_equal(validator_result_path(r, 63), "tableList[63].columns");
    assert_string_equal(validator_result_path(r, 64), "$");
    assert_string_equal(validator_result_message(r, 64), "... and 36 more problems");
    assert_null(validator_result_path(r, 65));
    assert_null(validator_result_message(r, 65));
    validator_result_free(r);
    free(json);
}

/* thousands of columns: valid, and one repeat found at its exact place */
static void test_many_columns(void **state)
{
    size_t count = 20000;
    char *json = malloc(count * 24 + 256);
    size_t n = 0;
    struct validator_result *r;

    (void)state;
    assert_non_null(json);
    n += (size_t)sprintf(json, "{\"name\":\"a\",\"datasourceName\":\"b\",\"tableList\":[{\"name\":"
                               "\"t\",\"columns\":[");
    for (size_t i = 0; i < count; i++)
        n += (size_t)sprintf(json + n, "%s{\"name\":\"c%zu\"}", i ? "," : "", i);
    sprintf(json + n, "]}]}");
    r = validator_check(json, strlen(json), 0);
    assert_int_equal(validator_result_verdict(r), VALIDATOR_OK);
    validator_result_free(r);

    /* column 17000 renamed to c123 */
    memcpy(strstr(json, "\"c17000\""), "\"c123\"  ", 8);
    r = validator_check(json, strlen(json), 0);
    assert_int_equal(validator_result_count(r), 1);
    assert_string_equal(validator_result_path(r, 0), "tableList[0].columns[17000].name");
    assert_words(validator_result_message(r, 0), "\"c123\"|first at columns[123]");
    validator_result_free(r);
    free(json);
}

static void test_null_buffer(void **state)
{
    struct validator_result *r = validator_check(NULL, 0, 0);

    (void)state;
    assert_non_null(r);
    assert_int_equal(validator_result_verdict(r), VALIDATOR_NOT_JSON);
    assert_words(validator_result_message(r, 0), "empty");
    validator_result_free(r);
    validator_result_free(NULL);
}

int main(void)
{
    const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_name),
        cmocka_unit_test(test_errors_json),
        cmocka_unit_test(test_not_nul_terminated),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_default_limit),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_problem_limit),
        cmocka_unit_test(test_many_columns),
        cmocka_unit_test(test_null_buffer),
    };
    size_t n = DM_ARRAY_LEN(cases);
    struct CMUnitTest *table = calloc(n, sizeof(*table));
    int failed;

    if (!table)
        return 1;
    for (size_t i = 0; i < n; i++) {
        table[i].name = cases[i].name;
        table[i].test_func = run_case;
        table[i].initial_state = (void *)&cases[i];
    }
    failed = _cmocka_run_group_tests("validator cases", table, n, NULL, NULL);
    failed += cmocka_run_group_tests_name("validator", fixed, NULL, NULL);
    free(table);
    return failed ? 1 : 0;
}
