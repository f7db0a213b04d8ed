package rocketmqfake

import "strconv"

// Request codes understood by the fake (values from Apache RocketMQ's
// RequestCode). They are exported so tests can target faults at them.
const (
	ReqSendMessage              int16 = 10
	ReqPullMessage              int16 = 11
	ReqQueryMessage             int16 = 12
	ReqQueryConsumerOffset      int16 = 14
	ReqUpdateConsumerOffset     int16 = 15
	ReqCreateTopic              int16 = 17
	ReqSearchOffsetByTimestamp  int16 = 29
	ReqGetMaxOffset             int16 = 30
	ReqGetMinOffset             int16 = 31
	ReqGetEarliestMsgStoreTime  int16 = 32
	ReqViewMessageByID          int16 = 33
	ReqHeartBeat                int16 = 34
	ReqUnregisterClient         int16 = 35
	ReqConsumerSendMsgBack      int16 = 36
	ReqEndTransaction           int16 = 37
	ReqGetConsumerListByGroup   int16 = 38
	ReqNotifyConsumerIdsChanged int16 = 40 // broker → client
	ReqLockBatchMQ              int16 = 41
	ReqUnlockBatchMQ            int16 = 42
	ReqGetRouteInfoByTopic      int16 = 105
	ReqGetBrokerClusterInfo     int16 = 106
	ReqGetAllTopicList          int16 = 206
	ReqDeleteTopicInBroker      int16 = 215
	ReqDeleteTopicInNamesrv     int16 = 216
	ReqSendMessageV2            int16 = 310
	ReqSendBatchMessage         int16 = 320
	ReqSendReplyMessage         int16 = 324
	ReqSendReplyMessageV2       int16 = 325
)

// Response codes (Apache RocketMQ's ResponseCode).
const (
	ResSuccess                 int16 = 0
	ResSystemError             int16 = 1
	ResSystemBusy              int16 = 2
	ResRequestCodeNotSupported int16 = 3
	ResFlushDiskTimeout        int16 = 10
	ResMessageIllegal          int16 = 13
	ResServiceNotAvailable     int16 = 14
	ResNoPermission            int16 = 16
	ResTopicNotExist           int16 = 17
	ResPullNotFound            int16 = 19
	ResPullRetryImmediately    int16 = 20
	ResPullOffsetMoved         int16 = 21
	ResQueryNotFound           int16 = 22
)

// Queue permissions as carried in route data.
const (
	permWrite = 1 << 1
	permRead  = 1 << 2
)

// Pull request sysFlag bits (PullSysFlag).
const (
	pullFlagCommitOffset = 1 << 0
	pullFlagSuspend      = 1 << 1
	pullFlagSubscription = 1 << 2
)

// Message sysFlag bits (MessageSysFlag).
const (
	msgFlagCompressed     = 1 << 0
	msgFlagTxMask         = 3 << 2
	msgFlagTxPrepared     = 1 << 2
	msgFlagTxCommit       = 2 << 2
	msgFlagTxRollback     = 3 << 2
	msgFlagBornHostV6     = 1 << 4
	msgFlagStoreHostV6    = 1 << 5
	messageMagicCode      = int32(-626843481) // 0xDAA320A7, CommitLog.MESSAGE_MAGIC_CODE (v1 layout)
	retryTopicPrefix      = "%RETRY%"
	dlqTopicPrefix        = "%DLQ%"
	defaultCreateTopicKey = "TBW102"
)

// Message property keys the fake reads or writes (MessageConst).
const (
	propKeys            = "KEYS"
	propTags            = "TAGS"
	propDelay           = "DELAY"
	propRetryTopic      = "RETRY_TOPIC"
	propRealTopic       = "REAL_TOPIC"
	propRealQueueID     = "REAL_QID"
	propTranPrepared    = "TRAN_MSG"
	propOriginMessageID = "ORIGIN_MESSAGE_ID"
	propUniqKey         = "UNIQ_KEY"
	propMaxReconsume    = "MAX_RECONSUME_TIMES"
)

var requestNames = map[int16]string{
	ReqSendMessage: "SEND_MESSAGE", ReqPullMessage: "PULL_MESSAGE", ReqQueryMessage: "QUERY_MESSAGE",
	ReqQueryConsumerOffset: "QUERY_CONSUMER_OFFSET", ReqUpdateConsumerOffset: "UPDATE_CONSUMER_OFFSET",
	ReqCreateTopic: "UPDATE_AND_CREATE_TOPIC", ReqSearchOffsetByTimestamp: "SEARCH_OFFSET_BY_TIMESTAMP",
	ReqGetMaxOffset: "GET_MAX_OFFSET", ReqGetMinOffset: "GET_MIN_OFFSET",
	ReqGetEarliestMsgStoreTime: "GET_EARLIEST_MSG_STORETIME", ReqViewMessageByID: "VIEW_MESSAGE_BY_ID",
	ReqHeartBeat: "HEART_BEAT", ReqUnregisterClient: "UNREGISTER_CLIENT",
	ReqConsumerSendMsgBack: "CONSUMER_SEND_MSG_BACK", ReqEndTransaction: "END_TRANSACTION",
	ReqGetConsumerListByGroup: "GET_CONSUMER_LIST_BY_GROUP", ReqNotifyConsumerIdsChanged: "NOTIFY_CONSUMER_IDS_CHANGED",
	ReqLockBatchMQ: "LOCK_BATCH_MQ", ReqUnlockBatchMQ: "UNLOCK_BATCH_MQ",
	ReqGetRouteInfoByTopic: "GET_ROUTEINFO_BY_TOPIC", ReqGetBrokerClusterInfo: "GET_BROKER_CLUSTER_INFO",
	ReqGetAllTopicList: "GET_ALL_TOPIC_LIST_FROM_NAMESERVER", ReqDeleteTopicInBroker: "DELETE_TOPIC_IN_BROKER",
	ReqDeleteTopicInNamesrv: "DELETE_TOPIC_IN_NAMESRV", ReqSendMessageV2: "SEND_MESSAGE_V2",
	ReqSendBatchMessage: "SEND_BATCH_MESSAGE", ReqSendReplyMessage: "SEND_REPLY_MESSAGE",
	ReqSendReplyMessageV2: "SEND_REPLY_MESSAGE_V2",
}

// RequestName returns RocketMQ's name for a request code, or "CODE_<n>".
func RequestName(code int16) string {
	if n, ok := requestNames[code]; ok {
		return n
	}
	return "CODE_" + strconv.Itoa(int(code))
}
