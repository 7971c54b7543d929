import type {
  CaseRecord,
  ChannelSettings,
  Direction,
  Directory,
  MediumName,
  ProfileSchema,
  ProfileValue,
  Segment,
  UserChatState,
  UserRecord,
} from './records';
import type { UsersFilter } from './filter';
import { MEDIUM_RENAME_MS } from './columns/cases';

/**
 * Deterministic, seeded workspace generator for tests, the local stack and the benchmarks.
 * Each user and each chat draws from its own PRNG stream seeded by (seed, stream, index), so
 * user i is the same whoever asks and however many are made, cases can name real users without
 * holding them, and 1,000,000 records stream without being held in memory.
 * Timestamps depend on the seed only; `now` merely caps them (nothing is generated in the future).
 */

// ---------------------------------------------------------------------------------------------
// PRNG: mulberry32 (32-bit state, good enough for test data, tiny and fast) + an integer mixer
// to derive independent stream seeds.

export type Rng = () => number;

export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mixes integers into one 32-bit seed (murmur3 finaliser per step). */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h ^= Math.floor(p) >>> 0;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    h ^= h >>> 16;
    // Fold the high part of large indexes too.
    h ^= Math.floor(p / 4294967296) >>> 0;
  }
  return h >>> 0;
}

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)]!;
}

function chance(rng: Rng, p: number): boolean {
  return rng() < p;
}

function intBetween(rng: Rng, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1));
}

function weighted<T>(rng: Rng, items: readonly (readonly [T, number])[]): T {
  let total = 0;
  for (const [, w] of items) total += w;
  let x = rng() * total;
  for (const [v, w] of items) {
    x -= w;
    if (x < 0) return v;
  }
  return items[items.length - 1]![0];
}

function pickSome<T>(rng: Rng, items: readonly T[], max: number): T[] {
  const n = intBetween(rng, 0, max);
  const out: T[] = [];
  for (let i = 0; i < n; i++) {
    const v = pick(rng, items);
    if (!out.includes(v)) out.push(v);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Vocabulary

const KOREAN_FAMILY = ['김', '이', '박', '최', '정', '강', '조', '윤', '장', '임', '한', '오', '서', '신', '권', '황', '안', '송', '류', '홍'];
const KOREAN_GIVEN = ['민', '서', '지', '현', '우', '준', '수', '은', '영', '하', '도', '윤', '예', '진', '재', '유', '아', '혜', '성', '경'];
const LATIN_FIRST = ['Emma', 'Liam', 'Olivia', 'Noah', 'Sophie', 'Lucas', 'Mia', 'Leo', 'Anna', 'Jonas', 'Clara', 'Mateo', 'Chloé', 'José', 'Zoë', 'Ethan'];
const LATIN_LAST = ['Smith', 'Müller', 'García', 'Martin', 'Rossi', 'Kim', 'Lee', 'Park', 'Dubois', 'Novak', 'Silva', "O'Brien", 'Jensen', 'Costa'];
const ROMAN_GIVEN = ['minji', 'seoyeon', 'jihoon', 'hyunwoo', 'yuna', 'doyun', 'haeun', 'jiwoo', 'seojun', 'eunji'];
const EMAIL_DOMAINS = ['gmail.com', 'naver.com', 'daum.net', 'kakao.com', 'example.com', 'outlook.com'];
const USER_TAGS = ['VIP', '재구매', '신규', 'wholesale', '이벤트참여', 'B2B', '불만고객', 'newsletter'];
const CASE_TAGS = ['배송문의', '환불', '결제오류', '회원가입', '쿠폰', 'shipping', 'refund', 'bug', '교환', 'account'];
const CITIES = ['서울', '부산', '인천', '대구', '대전', '광주', '수원', 'Jeju', 'Seongnam'];
const GRADES = ['bronze', 'silver', 'gold', 'platinum'];
const INTERESTS = ['fashion', 'beauty', '가전', '식품', 'sports', 'books'];
const INQUIRY_TYPES = ['배송', '환불', '결제', '상품문의', 'account', 'other'];
const PRIORITIES = ['low', 'medium', 'high', 'urgent'];
const DESCRIPTIONS = ['배송 지연 문의', '환불 요청 처리', 'Coupon not applied at checkout', '결제 오류 재현 중', '회원 정보 변경 요청'];
const SUMMARIES = [
  '고객이 주문한 상품의 배송 지연을 문의했고, 상담원이 예상 도착일을 안내했습니다.',
  '결제가 두 번 청구되어 한 건을 취소 처리했습니다.',
  'The customer could not log in; a password reset link was sent.',
  '쿠폰 적용 오류로 수동 할인을 적용했습니다.',
  '교환 절차와 반품 주소를 안내했습니다.',
];
const CSAT_COMMENTS = ['친절했어요', '빠른 답변 감사합니다', 'Slow reply', '해결이 안 됐어요', 'Great help!'];
const PAGES = ['https://shop.example.com/', 'https://shop.example.com/products/1024', 'https://shop.example.com/cart', 'https://shop.example.com/orders'];

const MEDIUM_WEIGHTS: readonly (readonly [MediumName, number])[] = [
  ['inAppChat', 40],
  ['phoneNumber', 15],
  ['email', 10],
  ['appNaverTalk', 10],
  ['appInstagramMessenger', 8],
  ['appLine', 7],
  ['appKakao', 10],
];

const SENDER_NAMES: Record<MediumName, readonly string[]> = {
  inAppChat: [],
  phoneNumber: ['+8216444052', '+82215881234'],
  email: [],
  appNaverTalk: ['wc21w7', 'wc8k2p'],
  appInstagramMessenger: ['channel.io', 'shop.example'],
  appLine: ['@channel.io', '@shopexample'],
  appKakao: ['@channel', '@shopexample'],
};

/** Replies exist for chats only (S8): not for calls. */
const REPLY_MEDIUMS = new Set<MediumName>(['inAppChat', 'email', 'appNaverTalk', 'appInstagramMessenger', 'appLine', 'appKakao']);

// ---------------------------------------------------------------------------------------------

const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
/** 2025-06-26T00:00 in Asia/Seoul: case statistics start (S3). */
export const GENERATOR_START_MS = Date.UTC(2025, 5, 25, 15, 0, 0);

export interface GenerateWorkspaceOptions {
  channelId: string;
  seed: number;
  users: number;
  cases: number;
  /** Caps every timestamp (default: no cap). The data does not otherwise depend on it. */
  now?: number | Date;
  /** Days from 2025-06-26 over which chats start (default 183, about six months). */
  spanDays?: number;
  timeZone?: string;
}

export interface GeneratedWorkspace {
  channel: ChannelSettings;
  userProfileSchema: ProfileSchema;
  chatProfileSchema: ProfileSchema;
  directory: Directory;
  segments: Segment[];
  /** Re-iterable; each iteration streams the same users in id order. */
  users: Iterable<UserRecord>;
  /** Re-iterable; each iteration streams the same cases, chat by chat. */
  cases: Iterable<CaseRecord>;
  userCount: number;
  caseCount: number;
  userIdAt(index: number): string;
  userAt(index: number): UserRecord;
}

const STREAM_USERS = 1;
const STREAM_CHATS = 2;
const STREAM_WORKSPACE = 3;

export function generateWorkspace(options: GenerateWorkspaceOptions): GeneratedWorkspace {
  const { channelId, seed } = options;
  const userCount = Math.max(0, Math.floor(options.users));
  const caseCount = Math.max(0, Math.floor(options.cases));
  if (caseCount > 0 && userCount === 0) throw new RangeError('generateWorkspace: cases need at least one user');
  const nowCap = options.now === undefined ? Number.POSITIVE_INFINITY : typeof options.now === 'number' ? options.now : options.now.getTime();
  const spanMs = (options.spanDays ?? 183) * DAY;
  const prefix = mixSeed(seed, 0xabc).toString(16).padStart(8, '0').slice(0, 6);

  const directory = makeDirectory(mixSeed(seed, STREAM_WORKSPACE));
  const userIdAt = (i: number) => `u${prefix}${i.toString(16).padStart(8, '0')}`;
  const userAt = (i: number) => makeUser(seed, i, userIdAt(i), nowCap);

  const users: Iterable<UserRecord> = {
    *[Symbol.iterator]() {
      for (let i = 0; i < userCount; i++) yield userAt(i);
    },
  };
  const cases: Iterable<CaseRecord> = {
    *[Symbol.iterator]() {
      let emitted = 0;
      for (let chat = 0; emitted < caseCount; chat++) {
        for (const c of makeChat({ seed, chat, prefix, userCount, directory, spanMs, nowCap })) {
          yield c;
          if (++emitted >= caseCount) return;
        }
      }
    },
  };

  return {
    channel: { channelId, name: `Workspace ${prefix}`, timeZone: options.timeZone ?? 'Asia/Seoul' },
    userProfileSchema: USER_PROFILE_SCHEMA,
    chatProfileSchema: CHAT_PROFILE_SCHEMA,
    directory,
    segments: SEGMENTS.map((s) => ({ ...s, id: `${s.id}-${prefix}` })),
    users,
    cases,
    userCount,
    caseCount,
    userIdAt,
    userAt,
  };
}

/** Order is deliberately neither alphabetical nor declaration order; one key is archived (C5). */
const USER_PROFILE_SCHEMA: ProfileSchema = {
  keys: [
    { key: 'city', type: 'string', order: 3, archived: false },
    { key: 'grade', type: 'string', order: 1, archived: false },
    { key: 'lastCheckoutCompletedAt', type: 'date', order: 0, archived: false },
    { key: 'legacyCouponCode', type: 'string', order: 1.5, archived: true },
    { key: 'totalPurchaseAmount', type: 'number', order: 2, archived: false },
    { key: 'interests', type: 'list', order: 4, archived: false },
    { key: 'isVip', type: 'boolean', order: 5, archived: false },
  ],
};

const CHAT_PROFILE_SCHEMA: ProfileSchema = {
  keys: [
    { key: 'csat', type: 'number', order: -2, archived: false },
    { key: 'csatComment', type: 'string', order: -1, archived: false },
    { key: 'orderNumber', type: 'string', order: 1, archived: false },
    { key: 'inquiryType', type: 'string', order: 0, archived: false },
    { key: 'oldTicketRef', type: 'string', order: 0.5, archived: true },
    { key: 'refundAmount', type: 'number', order: 2, archived: false },
  ],
};

const SEGMENTS: Segment[] = [
  {
    id: 'seg-vip',
    name: 'VIP customers',
    filter: {
      join: 'or',
      groups: [
        { join: 'and', conditions: [{ field: 'profile.grade', op: 'in', values: ['gold', 'platinum'] }] },
        { join: 'and', conditions: [{ field: 'tags', op: 'eq', value: 'VIP' }] },
      ],
    } satisfies UsersFilter,
  },
  {
    id: 'seg-recent-buyers',
    name: 'Members who bought in the last 30 days',
    filter: {
      join: 'and',
      groups: [
        {
          join: 'and',
          conditions: [
            { field: 'member', op: 'eq', value: true },
            { field: 'profile.lastCheckoutCompletedAt', op: 'withinLastDays', days: 30 },
          ],
        },
      ],
    } satisfies UsersFilter,
  },
  {
    id: 'seg-dormant',
    name: 'Dormant regulars',
    filter: {
      join: 'and',
      groups: [
        {
          join: 'and',
          conditions: [
            { field: 'lastSeenAt', op: 'beforeDaysAgo', days: 90 },
            { field: 'sessionCount', op: 'gte', value: 5 },
          ],
        },
      ],
    } satisfies UsersFilter,
  },
];

function makeDirectory(seed: number): Directory {
  const rng = mulberry32(seed);
  const teams = [
    { id: 'team-1', name: 'CS 1팀' },
    { id: 'team-2', name: 'CS 2팀' },
    { id: 'team-3', name: 'Billing' },
    { id: 'team-4', name: 'VIP Care' },
    { id: 'team-5', name: '기술지원' },
  ];
  const managers = Array.from({ length: 12 }, (_, i) => ({ id: `mgr-${i + 1}`, name: personName(rng) }));
  return { teams, managers };
}

function personName(rng: Rng): string {
  if (chance(rng, 0.6)) return pick(rng, KOREAN_FAMILY) + pick(rng, KOREAN_GIVEN) + pick(rng, KOREAN_GIVEN);
  return `${pick(rng, LATIN_FIRST)} ${pick(rng, LATIN_LAST)}`;
}

function seconds(ms: number): number {
  return Math.floor(ms / SEC) * SEC;
}

function mobile(rng: Rng): string {
  return `+8210${String(Math.floor(rng() * 1e8)).padStart(8, '0')}`;
}

/** The user's name is the first draw of its stream, so a case can name its user cheaply. */
function userNameFor(seed: number, index: number): { rng: Rng; name: string | undefined } {
  const rng = mulberry32(mixSeed(seed, STREAM_USERS, index));
  const missing = chance(rng, 0.04);
  const name = personName(rng);
  return { rng, name: missing ? undefined : name };
}

function makeUser(seed: number, index: number, id: string, nowCap: number): UserRecord {
  const { rng, name } = userNameFor(seed, index);
  const createdAt = Math.min(seconds(Date.UTC(2023, 0, 1) + rng() * (Date.UTC(2025, 9, 1) - Date.UTC(2023, 0, 1))), nowCap);
  const member = chance(rng, 0.45);
  const user: UserRecord = {
    id,
    member,
    tags: pickSome(rng, USER_TAGS, 3),
    sessionCount: Math.floor(-Math.log(1 - rng()) * 12),
    createdAt,
    marketingConsentEmail: chance(rng, 0.5),
    marketingConsentTexting: chance(rng, 0.4),
    blocked: chance(rng, 0.02),
    profile: {},
  };
  if (name !== undefined) user.name = name;
  if (member) user.memberId = `M${(100000 + index).toString()}`;
  if (chance(rng, 0.85)) user.mobileNumber = mobile(rng);
  if (chance(rng, 0.7)) {
    const local = chance(rng, 0.5) ? pick(rng, ROMAN_GIVEN) : `user${intBetween(rng, 1, 99999)}`;
    user.email = `${local}.${index.toString(36)}@${pick(rng, EMAIL_DOMAINS)}`;
  }
  if (chance(rng, 0.9)) user.lastSeenAt = Math.min(seconds(createdAt + rng() * (Date.UTC(2026, 0, 1) - createdAt)), nowCap);
  const profile: Record<string, ProfileValue> = {};
  if (chance(rng, 0.5)) profile.lastCheckoutCompletedAt = Math.min(seconds(GENERATOR_START_MS + rng() * 183 * DAY), nowCap);
  if (chance(rng, 0.6)) profile.totalPurchaseAmount = intBetween(rng, 0, 5_000_000);
  if (chance(rng, 0.8)) profile.grade = pick(rng, GRADES);
  if (chance(rng, 0.7)) profile.city = pick(rng, CITIES);
  if (chance(rng, 0.4)) profile.interests = pickSome(rng, INTERESTS, 3);
  if (chance(rng, 0.3)) profile.isVip = chance(rng, 0.3);
  // Archived key: values remain in old records but must never reach a file (C5).
  if (chance(rng, 0.2)) profile.legacyCouponCode = `CPN-${intBetween(rng, 1000, 9999)}`;
  user.profile = profile;
  return user;
}

interface ChatParams {
  seed: number;
  chat: number;
  prefix: string;
  userCount: number;
  directory: Directory;
  spanMs: number;
  nowCap: number;
}

/** One chat and its cases (each reopening is a new case, S1). */
function makeChat(p: ChatParams): CaseRecord[] {
  const rng = mulberry32(mixSeed(p.seed, STREAM_CHATS, p.chat));
  const userIndex = Math.floor(rng() * p.userCount);
  const userId = `u${p.prefix}${userIndex.toString(16).padStart(8, '0')}`;
  const userName = userNameFor(p.seed, userIndex).name;
  const medium = weighted(rng, MEDIUM_WEIGHTS);
  const isCall = medium === 'phoneNumber';
  // Direction is fixed by the chat's first case (S8).
  const direction: Direction = chance(rng, medium === 'phoneNumber' || medium === 'email' ? 0.3 : 0.1) ? 'outbound' : 'inbound';
  const createdAt = seconds(GENERATOR_START_MS + rng() * p.spanMs);
  const senders = SENDER_NAMES[medium];
  const legacySender = createdAt < MEDIUM_RENAME_MS;
  const mediumSenderName =
    senders.length === 0 ? undefined : legacySender ? `am-${Math.floor(rng() * 0xffffff).toString(16)}` : pick(rng, senders);
  const workflowId = !isCall && chance(rng, 0.5) ? `wf-${intBetween(rng, 1, 30)}` : undefined;
  const page = medium === 'inAppChat' && chance(rng, 0.7) ? pick(rng, PAGES) : undefined;
  const marketing = direction === 'outbound' && !isCall && chance(rng, 0.6);
  const marketingType = marketing ? (chance(rng, 0.5) ? 'oneTimeMsg' : 'campaign') : undefined;
  const marketingId = marketing ? `mkt-${intBetween(rng, 1, 500)}` : undefined;
  const teams = p.directory.teams;
  const managers = p.directory.managers;
  const n = chance(rng, 0.3) ? intBetween(rng, 2, 4) : 1;
  const chatId = `${p.prefix}c${p.chat.toString(16).padStart(8, '0')}`;

  const out: CaseRecord[] = [];
  let start = createdAt;
  const csatKeep: { csat?: number; csatComment?: string } = {};
  for (let j = 1; j <= n; j++) {
    const last = j === n;
    const missed = isCall && direction === 'inbound' && chance(rng, 0.12);
    const queued = !missed && chance(rng, 0.7);
    const firstQueuedAt = queued ? start : undefined;
    const stillQueued = last && queued && chance(rng, 0.05);
    const firstOpenedAt = missed || stillQueued ? undefined : seconds(start + (queued ? rng() * 30 * MIN : 0));
    let firstAskedAt: number | undefined;
    if (isCall) firstAskedAt = direction === 'inbound' && firstOpenedAt !== undefined ? firstOpenedAt : undefined;
    else if (direction === 'inbound' || chance(rng, 0.5)) firstAskedAt = seconds(start + rng() * 10 * MIN);
    const replyCount = REPLY_MEDIUMS.has(medium) && firstOpenedAt !== undefined && !chance(rng, 0.15) ? intBetween(rng, 1, 20) : 0;
    const base = Math.max(firstOpenedAt ?? start, firstAskedAt ?? start);
    const firstRepliedAt = replyCount > 0 ? seconds(base + 30 * SEC + rng() * 2 * HOUR) : undefined;
    const totalReplyTime = replyCount > 0 ? Math.round(replyCount * (20 + rng() * 1800)) : 0;
    const snoozedCount = firstOpenedAt !== undefined && chance(rng, 0.2) ? intBetween(rng, 1, 3) : 0;
    const totalSnoozedTime = snoozedCount > 0 ? Math.round(snoozedCount * (600 + rng() * 6 * 3600)) : 0;
    const missedCount = missed ? intBetween(rng, 1, 3) : isCall && chance(rng, 0.05) ? 1 : 0;
    const open = last && (stillQueued || chance(rng, 0.12));
    const closedAt = open ? undefined : seconds((firstOpenedAt ?? start) + 5 * MIN + rng() * 3 * DAY + totalSnoozedTime * SEC);
    let userChatState: UserChatState = 'closed';
    if (open) userChatState = stillQueued ? 'queued' : missed ? 'missed' : snoozedCount > 0 && chance(rng, 0.5) ? 'snoozed' : 'open';
    const updatedAt = closedAt ?? Math.max(firstRepliedAt ?? 0, firstOpenedAt ?? 0, start);
    const nextStart = closedAt === undefined ? undefined : seconds(closedAt + HOUR / 2 + rng() * 10 * DAY);

    const profile: Record<string, ProfileValue> = {};
    // CSAT stays on the chat profile across cases (S8: not cleared for a later case).
    if (closedAt !== undefined && chance(rng, 0.4)) {
      csatKeep.csat = intBetween(rng, 1, 5);
      if (chance(rng, 0.3)) csatKeep.csatComment = pick(rng, CSAT_COMMENTS);
    }
    if (csatKeep.csat !== undefined) profile.csat = csatKeep.csat;
    if (csatKeep.csatComment !== undefined) profile.csatComment = csatKeep.csatComment;
    if (chance(rng, 0.6)) profile.inquiryType = pick(rng, INQUIRY_TYPES);
    if (chance(rng, 0.4)) profile.orderNumber = `ORD-${intBetween(rng, 100000, 999999)}`;
    if (chance(rng, 0.15)) profile.refundAmount = intBetween(rng, 1, 300) * 1000;
    if (chance(rng, 0.1)) profile.oldTicketRef = `T-${intBetween(rng, 1, 99999)}`;

    const rec: CaseRecord = {
      userChatCaseId: `${chatId}k${j}`,
      userChatCase: j,
      userChatCaseUpdatedAt: Math.min(updatedAt, p.nowCap),
      userChatId: chatId,
      direction,
      userChatState,
      managerIds: chance(rng, 0.3) ? pickSome(rng, managers, 2).map((m) => m.id) : [],
      userId,
      createdAt: Math.min(createdAt, p.nowCap),
      totalReplyTime,
      replyCount,
      totalSnoozedTime,
      snoozedCount,
      missedCount,
      tags: pickSome(rng, CASE_TAGS, 3),
      mediumName: medium,
      profile,
    };
    if (chance(rng, 0.9)) rec.teamId = pick(rng, teams).id;
    if (firstOpenedAt !== undefined || chance(rng, 0.3)) rec.assigneeId = pick(rng, managers).id;
    if (userName !== undefined) rec.userName = userName;
    setTs(rec, 'firstQueuedAt', firstQueuedAt, p.nowCap);
    setTs(rec, 'firstOpenedAt', firstOpenedAt, p.nowCap);
    setTs(rec, 'firstAskedAt', firstAskedAt, p.nowCap);
    setTs(rec, 'firstRepliedAt', firstRepliedAt, p.nowCap);
    setTs(rec, 'closedAt', closedAt, p.nowCap);
    if (chance(rng, 0.2)) rec.description = pick(rng, DESCRIPTIONS);
    if (closedAt !== undefined && chance(rng, 0.3)) rec.summarizedMessage = pick(rng, SUMMARIES);
    if (mediumSenderName !== undefined) rec.mediumSenderName = mediumSenderName;
    if (marketingType !== undefined) rec.marketingType = marketingType;
    if (marketingId !== undefined) rec.marketingId = marketingId;
    if (workflowId !== undefined) rec.workflowId = workflowId;
    if (page !== undefined) rec.page = page;
    if (chance(rng, 0.6)) rec.priority = pick(rng, PRIORITIES);
    // A reopening after `now` has not happened yet: the chat ends here for now.
    const reopened = !last && nextStart !== undefined && nextStart <= p.nowCap;
    if (reopened) rec.nextCaseStartedAt = nextStart;
    out.push(rec);
    if (!reopened) break;
    start = nextStart;
  }
  return out;
}

function setTs(rec: CaseRecord, key: 'firstQueuedAt' | 'firstOpenedAt' | 'firstAskedAt' | 'firstRepliedAt' | 'closedAt', value: number | undefined, cap: number): void {
  // Beyond `now` it has not happened yet.
  if (value !== undefined && value <= cap) rec[key] = value;
}
