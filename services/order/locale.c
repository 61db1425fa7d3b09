/*
 * locale.c: the primary language of an Accept-Language header or a BCP 47
 * tag, which is all the notification templates need ("de-AT" -> "de").
 * Pure; any thread.
 */
#include <ctype.h>
#include "order_int.h"

bool order_locale(char out[8], const char *al)
{
    size_t n = 0;
    while (al && (*al == ' ' || *al == '\t'))
        al++;
    while (al && isalpha((unsigned char)al[n]) && n < 3)
        n++;
    if (n < 2 || (al[n] != '\0' && al[n] != '-' && al[n] != '_' && al[n] != ',' && al[n] != ';' && al[n] != ' '))
        return false;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)al[i]);
    out[n] = '\0';
    return true;
}
