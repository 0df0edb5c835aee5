/* Field-by-field comparison of fb_msg values (tests only). */
#ifndef MSG_COMPARE_H
#define MSG_COMPARE_H

#include "fb_protocol.h"

/* 1 if a and b carry the same type, seq and fields (sensor data compared by content). */
int msg_equal(const fb_msg *a, const fb_msg *b);

#endif
