/**
 * Deterministic, realistic-looking rows for the benchmark: row i depends only on (shape, i),
 * so workers can generate their own slices and every run writes the same data.
 */
import type { ColumnSpec, Row } from '../shared/xlsx/types';

export type Shape = 'contact' | 'case';

function col(key: string, type: ColumnSpec['type']): ColumnSpec {
  return { key, header: key, type };
}

export const CASE_COLUMNS: ColumnSpec[] = [
  col('userChatCaseCreatedAt', 'date'),
  col('userChatCase', 'number'),
  col('userChatCaseId', 'string'),
  col('userChatCaseState', 'string'),
  col('userChatCaseUpdatedAt', 'date'),
  col('userChatId', 'string'),
  col('direction', 'string'),
  col('userChatState', 'string'),
  col('userChatUrl', 'string'),
  col('teamId', 'string'),
  col('teamName', 'string'),
  col('assigneeId', 'string'),
  col('assigneeName', 'string'),
  col('managerIds', 'string'),
  col('managerNames', 'string'),
  col('userId', 'string'),
  col('userName', 'string'),
  col('createdAt', 'date'),
  col('firstQueuedAt', 'date'),
  col('firstOpenedAt', 'date'),
  col('firstAskedAt', 'date'),
  col('firstRepliedAt', 'date'),
  col('closedAt', 'date'),
  col('waitingTime', 'duration'),
  col('totalReplyTime', 'duration'),
  col('replyCount', 'number'),
  col('avgReplyTime', 'duration'),
  col('resolutionTime', 'duration'),
  col('totalSnoozedTime', 'duration'),
  col('leadTime', 'duration'),
  col('snoozedCount', 'number'),
  col('missedCount', 'number'),
  col('description', 'string'),
  col('summarizedMessage', 'string'),
  col('tags', 'string'),
  col('mediumName', 'string'),
  col('mediumSenderName', 'string'),
  col('marketingType', 'string'),
  col('marketingId', 'string'),
  col('workflowId', 'string'),
  col('page', 'string'),
  col('priority', 'string'),
  col('profile.csat', 'number'),
  col('profile.csatComment', 'string'),
  col('profile.plan', 'string'),
];

export const CONTACT_COLUMNS: ColumnSpec[] = [
  col('id', 'string'),
  col('memberId', 'string'),
  col('name', 'string'),
  col('mobileNumber', 'string'),
  col('email', 'string'),
  col('member', 'boolean'),
  col('blocked', 'boolean'),
  col('unsubscribeEmail', 'boolean'),
  col('unsubscribeTexting', 'boolean'),
  col('tags', 'string'),
  col('createdAt', 'date'),
  col('updatedAt', 'date'),
  col('lastSeenAt', 'date'),
  col('sessionCount', 'number'),
  col('country', 'string'),
  col('city', 'string'),
  col('language', 'string'),
  col('web.device', 'string'),
  col('web.browser', 'string'),
  col('profile.company', 'string'),
  col('profile.position', 'string'),
  col('profile.birthday', 'string'),
  col('profile.memberGrade', 'string'),
  col('profile.totalPurchase', 'number'),
  col('profile.purchaseCount', 'number'),
  col('profile.lastCheckoutCompletedAt', 'date'),
  col('profile.referrer', 'string'),
  col('profile.memo', 'string'),
  col('profile.marketingConsentAt', 'date'),
  col('profile.zipCode', 'string'),
];

export function columnsFor(shape: Shape): ColumnSpec[] {
  return shape === 'case' ? CASE_COLUMNS : CONTACT_COLUMNS;
}

/** A small hash-based PRNG: value k of row i, without state shared between rows. */
function rand(i: number, k: number): number {
  let h = Math.imul(i ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(k + 0x632be5ab, 0xc2b2ae35);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12;
  h = Math.imul(h, 0x297a2d39);
  h ^= h >>> 15;
  return (h >>> 0) / 4294967296;
}
function pick<T>(list: readonly T[], i: number, k: number): T {
  return list[Math.floor(rand(i, k) * list.length)]!;
}
// Ids are slices of one long deterministic hex string: unique-looking, and flat strings like
// the ones JSON parsing gives the real pipeline (concatenated ids would be V8 cons-strings).
const HEX_POOL = (() => {
  const digits = '0123456789abcdef';
  const b = Buffer.alloc(1 << 20);
  let x = 0x12345678;
  for (let j = 0; j < b.length; j++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[j] = digits.charCodeAt((x >>> 0) & 15);
  }
  return b.toString('latin1');
})();
function hex(i: number, k: number, n: number): string {
  const start = Math.floor(rand(i, k) * (HEX_POOL.length - n));
  return HEX_POOL.slice(start, start + n);
}
const FAMILY = ['김', '이', '박', '최', '정', '강', '조', '윤', '장', '임', 'Smith', 'Garcia'];
const GIVEN = ['민준', '서연', '도윤', '하은', '지호', '수아', '예준', '지우', 'John', 'Maria', 'Aisha'];
const TEAMS = ['Support', 'Sales', 'VIP', 'Billing', '배송팀', '환불팀'];
const TAGS = ['refund', 'delivery', 'vip', 'bug', '문의', '배송지연', 'coupon', 'login'];
const PHRASES = [
  '주문한 상품이 아직 도착하지 않았어요. 언제 받을 수 있나요?',
  'I was charged twice for the same order, please help.',
  '쿠폰이 적용되지 않습니다. 확인 부탁드립니다.',
  'How do I change my shipping address after ordering?',
  '환불 요청드립니다. 사이즈가 맞지 않아요.',
  '로그인이 안 돼요 비밀번호 재설정 메일이 오지 않습니다',
];
const SUMMARIES = [
  '고객이 배송 지연을 문의하여 예상 도착일을 안내함.',
  'Customer reported a duplicate charge; refund issued.',
  '쿠폰 적용 오류, 재발급으로 해결.',
  '주소 변경 요청, 출고 전이라 변경 완료.',
];
const MEDIUMS = ['inAppChat', 'phoneNumber', 'email', 'appNaverTalk', 'appInstagramMessenger', 'appLine', 'appKakao'];
const CITIES = ['Seoul', 'Busan', 'Incheon', 'Tokyo', 'Osaka', 'Singapore', 'New York'];
const BASE = Date.UTC(2025, 6, 1);

function name(i: number, k: number): string {
  return pick(FAMILY, i, k) + pick(GIVEN, i, k + 1);
}
function phone(i: number, k: number): string {
  return '010' + String(Math.floor(rand(i, k) * 1e8)).padStart(8, '0');
}

export function generateRow(shape: Shape, i: number): Row {
  return shape === 'case' ? caseRow(i) : contactRow(i);
}

function caseRow(i: number): Row {
  const created = BASE + Math.floor(rand(i, 1) * 180 * 86_400_000);
  const queued = created + Math.floor(rand(i, 2) * 60_000);
  const opened = queued + Math.floor(rand(i, 3) * 300_000);
  const replied = opened + Math.floor(rand(i, 4) * 900_000);
  const closed = rand(i, 5) < 0.85 ? replied + Math.floor(rand(i, 6) * 7_200_000) : null;
  const replyCount = 1 + Math.floor(rand(i, 7) * 12);
  const totalReply = Math.floor(rand(i, 8) * 3600);
  const snoozed = rand(i, 9) < 0.2 ? Math.floor(rand(i, 10) * 1800) : 0;
  const resolution = closed === null ? null : Math.round((closed - opened) / 1000);
  const chatId = hex(i >>> 1, 11, 24);
  const medium = pick(MEDIUMS, i, 12);
  return {
    userChatCaseCreatedAt: Math.min(queued, opened),
    userChatCase: 1 + (i % 3),
    userChatCaseId: hex(i, 13, 24),
    userChatCaseState: closed === null ? 'inProgress' : 'completed',
    userChatCaseUpdatedAt: closed ?? replied,
    userChatId: chatId,
    direction: rand(i, 14) < 0.9 ? 'inbound' : 'outbound',
    userChatState: closed === null ? pick(['opened', 'snoozed', 'queued'], i, 15) : 'closed',
    userChatUrl: `https://desk.example.com/#/channels/12345/user_chats/${chatId}`,
    teamId: String(100 + Math.floor(rand(i, 16) * 6)),
    teamName: pick(TEAMS, i, 16),
    assigneeId: String(5000 + Math.floor(rand(i, 17) * 40)),
    assigneeName: name(i, 18),
    managerIds: `${5000 + Math.floor(rand(i, 19) * 40)},${5000 + Math.floor(rand(i, 20) * 40)}`,
    managerNames: `${name(i, 21)}, ${name(i, 23)}`,
    userId: hex(i >>> 2, 25, 24),
    userName: name(i, 26),
    createdAt: created,
    firstQueuedAt: queued,
    firstOpenedAt: opened,
    firstAskedAt: queued + 1000,
    firstRepliedAt: replied,
    closedAt: closed,
    waitingTime: Math.round((replied - Math.min(opened, queued)) / 1000),
    totalReplyTime: totalReply,
    replyCount,
    avgReplyTime: Math.round((totalReply / replyCount) * 100) / 100,
    resolutionTime: resolution,
    totalSnoozedTime: snoozed,
    leadTime: resolution === null ? null : resolution - snoozed,
    snoozedCount: snoozed > 0 ? 1 : 0,
    missedCount: medium === 'phoneNumber' ? Math.floor(rand(i, 27) * 3) : 0,
    description: pick(PHRASES, i, 28),
    summarizedMessage: pick(SUMMARIES, i, 29),
    tags: `${pick(TAGS, i, 30)},${pick(TAGS, i, 31)}`,
    mediumName: medium,
    mediumSenderName: medium === 'email' ? null : medium === 'phoneNumber' ? phone(i, 32) : `partner_${hex(i, 33, 6)}`,
    marketingType: rand(i, 34) < 0.1 ? pick(['oneTimeMsg', 'campaign'], i, 35) : null,
    marketingId: rand(i, 34) < 0.1 ? hex(i, 36, 12) : null,
    workflowId: rand(i, 37) < 0.5 ? String(9000 + Math.floor(rand(i, 38) * 20)) : null,
    page: `https://shop.example.com/products/${Math.floor(rand(i, 39) * 5000)}`,
    priority: pick(['low', 'medium', 'high', 'urgent'], i, 40),
    'profile.csat': closed === null ? null : 1 + Math.floor(rand(i, 41) * 5),
    'profile.csatComment': rand(i, 42) < 0.3 ? '친절한 상담 감사합니다' : null,
    'profile.plan': pick(['free', 'basic', 'pro', 'enterprise'], i, 43),
  };
}

function contactRow(i: number): Row {
  const created = BASE - Math.floor(rand(i, 1) * 700 * 86_400_000);
  const member = rand(i, 2) < 0.6;
  return {
    id: hex(i, 3, 24),
    memberId: member ? `M${String(i).padStart(9, '0')}` : null,
    name: name(i, 4),
    mobileNumber: phone(i, 5),
    email: `user${i}@example.${pick(['com', 'co.kr', 'net'], i, 6)}`,
    member,
    blocked: rand(i, 7) < 0.01,
    unsubscribeEmail: rand(i, 8) < 0.2,
    unsubscribeTexting: rand(i, 9) < 0.2,
    tags: rand(i, 10) < 0.5 ? `${pick(TAGS, i, 11)},${pick(TAGS, i, 12)}` : null,
    createdAt: created,
    updatedAt: created + Math.floor(rand(i, 13) * 90 * 86_400_000),
    lastSeenAt: created + Math.floor(rand(i, 14) * 200 * 86_400_000),
    sessionCount: Math.floor(rand(i, 15) * 300),
    country: pick(['KR', 'JP', 'US', 'SG'], i, 16),
    city: pick(CITIES, i, 17),
    language: pick(['ko', 'en', 'ja'], i, 18),
    'web.device': pick(['desktop', 'mobile', 'tablet'], i, 19),
    'web.browser': pick(['Chrome 131', 'Safari 18', 'Samsung Internet 27', 'Edge 131'], i, 20),
    'profile.company': rand(i, 21) < 0.4 ? `${pick(['주식회사', 'Acme', 'Globex'], i, 22)} ${hex(i, 23, 4)}` : null,
    'profile.position': rand(i, 24) < 0.3 ? pick(['매니저', 'CEO', 'Engineer', '대리'], i, 25) : null,
    'profile.birthday': rand(i, 26) < 0.5 ? `19${70 + Math.floor(rand(i, 27) * 30)}-0${1 + Math.floor(rand(i, 28) * 9)}-1${Math.floor(rand(i, 29) * 9)}` : null,
    'profile.memberGrade': pick(['bronze', 'silver', 'gold', 'vip'], i, 30),
    'profile.totalPurchase': Math.floor(rand(i, 31) * 5_000_000),
    'profile.purchaseCount': Math.floor(rand(i, 32) * 80),
    'profile.lastCheckoutCompletedAt': rand(i, 33) < 0.7 ? created + Math.floor(rand(i, 34) * 300 * 86_400_000) : null,
    'profile.referrer': pick(['naver', 'google', 'instagram', 'direct', 'kakao'], i, 35),
    'profile.memo': rand(i, 36) < 0.2 ? pick(PHRASES, i, 37) : null,
    'profile.marketingConsentAt': rand(i, 38) < 0.5 ? created + 1000 : null,
    'profile.zipCode': String(Math.floor(rand(i, 39) * 100000)).padStart(5, '0'),
  };
}
