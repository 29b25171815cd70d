/* mock_dialect: the table of the dialects the mock speaks. A new dialect is
 * a dialect_NAME.c defining its mock_dialect table, listed here. */
#include <string.h>

#include "tools/mock/mock_internal.h"

/* In the order of --help; the first is the default. */
const mock_dialect *const mock_dialects[] = {&mock_dialect_mock,   &mock_dialect_generic,      &mock_dialect_smsbat,
                                             &mock_dialect_devino, &mock_dialect_agiletelecom, &mock_dialect_smsc,
                                             &mock_dialect_twilio, &mock_dialect_vonage,       NULL};

const mock_dialect *mock_dialect_find(const char *name, size_t len) {
    for (int i = 0; mock_dialects[i]; i++)
        if (strlen(mock_dialects[i]->name) == len && memcmp(mock_dialects[i]->name, name, len) == 0)
            return mock_dialects[i];
    return NULL;
}
