#include "msg_compare.h"

#include <string.h>

static int hello_equal(const fb_hello *a, const fb_hello *b)
{
    return a->flags == b->flags && a->min_version == b->min_version && a->max_version == b->max_version &&
           a->device_id == b->device_id && a->capabilities == b->capabilities &&
           a->max_payload == b->max_payload && strcmp(a->firmware, b->firmware) == 0 &&
           a->has_extension == b->has_extension &&
           (!a->has_extension || (a->minor_version == b->minor_version && a->schema_hash == b->schema_hash &&
                                  a->boot_id == b->boot_id));
}

static int sensor_equal(const fb_sensor_frame *a, const fb_sensor_frame *b)
{
    unsigned i;
    if (a->sensor_id != b->sensor_id || a->timestamp_ms != b->timestamp_ms || a->dtype != b->dtype ||
        a->rank != b->rank || a->data_len != b->data_len) {
        return 0;
    }
    for (i = 0; i < a->rank; ++i) {
        if (a->shape[i] != b->shape[i]) {
            return 0;
        }
    }
    return a->data_len == 0 || memcmp(a->data, b->data, a->data_len) == 0;
}

int msg_equal(const fb_msg *a, const fb_msg *b)
{
    if (a->type != b->type || a->seq != b->seq) {
        return 0;
    }
    switch (a->type) {
    case FB_TYPE_HELLO:
        return hello_equal(&a->u.hello, &b->u.hello);
    case FB_TYPE_SENSOR_FRAME:
        return sensor_equal(&a->u.sensor, &b->u.sensor);
    case FB_TYPE_TRIGGER:
        return a->u.trigger.input_id == b->u.trigger.input_id &&
               a->u.trigger.timestamp_ms == b->u.trigger.timestamp_ms;
    case FB_TYPE_RESULT:
        return a->u.result.result_id == b->u.result.result_id && a->u.result.ref_seq == b->u.result.ref_seq &&
               a->u.result.label == b->u.result.label &&
               a->u.result.score_permille == b->u.result.score_permille &&
               a->u.result.verdict == b->u.result.verdict;
    case FB_TYPE_IO_SET:
        return a->u.io_set.output_id == b->u.io_set.output_id && a->u.io_set.state == b->u.io_set.state &&
               a->u.io_set.pulse_ms == b->u.io_set.pulse_ms;
    case FB_TYPE_ACK:
        return a->u.ack.acked_type == b->u.ack.acked_type && a->u.ack.acked_seq == b->u.ack.acked_seq;
    case FB_TYPE_NACK:
        return a->u.ack.acked_type == b->u.ack.acked_type && a->u.ack.acked_seq == b->u.ack.acked_seq &&
               a->u.ack.code == b->u.ack.code;
    case FB_TYPE_HEARTBEAT:
        return memcmp(&a->u.heartbeat, &b->u.heartbeat, sizeof a->u.heartbeat) == 0;
    case FB_TYPE_TIME_REQUEST:
        return a->u.time_request.token == b->u.time_request.token;
    case FB_TYPE_TIME_REPLY:
        return a->u.time_reply.token == b->u.time_reply.token &&
               a->u.time_reply.device_ms == b->u.time_reply.device_ms;
    case FB_TYPE_DEVICE_STATUS:
        return memcmp(&a->u.device_status, &b->u.device_status, sizeof a->u.device_status) == 0;
    case FB_TYPE_ENTER_BOOTLOADER:
        return a->u.enter_bootloader.magic == b->u.enter_bootloader.magic &&
               a->u.enter_bootloader.mode == b->u.enter_bootloader.mode;
    default:
        return 0;
    }
}
